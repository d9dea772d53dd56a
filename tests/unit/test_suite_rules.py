"""Rules of the test suite itself, read from the source (ast): every test module lives in a layer
folder under one naming scheme, imports no other test module (shared code lives in gitreg.testing,
shared fixtures in conftest.py, which pytest provides without an import), and imports no private
name from gitreg (tests go through the public surface)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
LAYERS = ("unit", "cli", "serve", "reliability")
# Private imports still allowed (none: keep it so). Only ever shrinks: an entry whose import is
# gone fails below, so that it is deleted here too.
KNOWN_PRIVATE: set[tuple[str, str]] = set()


def suite_modules() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def imports(path: Path) -> list[tuple[int, int, str]]:
    """(line, relative level, dotted name) of every module and every name ``path`` imports."""
    out: list[tuple[int, int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, 0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            out.append((node.lineno, node.level, module))
            out += [(node.lineno, node.level, f"{module}.{alias.name}".strip(".")) for alias in node.names]
    return out


def is_private(dotted: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in dotted.split("."))


def test_every_test_module_is_in_a_layer_and_named_test_thing() -> None:
    misplaced = [
        str(p.relative_to(TESTS))
        for p in suite_modules()
        if p.name != "conftest.py"
        and not (
            len(p.relative_to(TESTS).parts) == 2 and p.parent.name in LAYERS and p.name.startswith("test_")
        )
    ]
    assert not misplaced, f"test modules belong in tests/{{{','.join(LAYERS)}}}/test_<thing>.py: {misplaced}"


def test_test_module_names_are_unique_across_layers() -> None:
    """pytest imports test modules by base name (rootdir-relative, no packages): two
    test_x.py in different layers collide with "import file mismatch"."""
    seen: dict[str, list[str]] = {}
    for p in suite_modules():
        if p.name != "conftest.py":
            seen.setdefault(p.name, []).append(str(p.relative_to(TESTS)))
    twice = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not twice, f"rename one of each: {twice}"


def test_no_test_module_imports_another_test_module() -> None:
    local = {p.stem for p in suite_modules()} | {"tests", "conftest"}
    found = sorted(
        {
            f"{p.relative_to(TESTS)}:{line}: {'.' * level}{name.split('.')[0]}"
            for p in suite_modules()
            for line, level, name in imports(p)
            if level > 0 or name.split(".")[0] in local
        }
    )
    assert not found, (
        "shared test code belongs in gitreg.testing, shared fixtures in conftest.py:\n" + "\n".join(found)
    )


def test_no_test_imports_a_private_name_from_gitreg() -> None:
    found = {
        (str(p.relative_to(TESTS)), name)
        for p in suite_modules()
        for _, level, name in imports(p)
        if level == 0 and name.split(".")[0] == "gitreg" and is_private(name)
    }
    new = sorted(found - KNOWN_PRIVATE)
    assert not new, (
        f"tests use gitreg's public names only (make it public, or test through its caller): {new}"
    )
    gone = sorted(KNOWN_PRIVATE - found)
    assert not gone, f"no longer imported: delete these from KNOWN_PRIVATE in {Path(__file__).name}: {gone}"


def test_the_rules_catch_what_they_forbid(tmp_path: Path) -> None:
    """The walker itself: the forbidden shapes are found, the allowed ones are not."""
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import conftest\nfrom tests.cli import test_pull\nfrom . import helpers\n"
        "from gitreg.registry import _ListCache, Registry\nimport gitreg._fs\n"
        "from gitreg.testing.repos import git\n"
    )
    names = imports(sample)
    assert (
        (1, 0, "conftest") in names and (2, 0, "tests.cli.test_pull") in names and (3, 1, "helpers") in names
    )
    private = sorted(
        name for _, level, name in names if level == 0 and name.startswith("gitreg") and is_private(name)
    )
    assert private == ["gitreg._fs", "gitreg.registry._ListCache"]
    assert not is_private("gitreg.testing.repos.git") and not is_private("gitreg.__version__")
