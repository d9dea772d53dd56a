"""Profiling child of the benchmarks: run one ``gitreg`` command in-process and print, as the
last line on stderr, a JSON object saying where the wall-clock time went.

``--mode phases`` (default) wraps gitreg's own functions with perf_counter timers (inclusive
times; a wrapper costs well under a microsecond per call) and times the heavy imports first, on
their own. ``--mode cprofile`` runs the command under cProfile (imports included) and prints
the top functions by cumulative time.

Run by hand inside a registry repo:
    .venv/bin/python benchmarks/_profile_cli.py --mode phases list --json --limit 0
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import functools  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

TIMES: dict[str, list[float]] = {}


def _add(label: str, seconds: float) -> None:
    slot = TIMES.setdefault(label, [0, 0.0])
    slot[0] += 1
    slot[1] += seconds


def timed(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _add(label, time.perf_counter() - t)

    return wrapper


def _git_label(args: Any) -> str:
    args = list(args)
    return f"git {' '.join(args[:2]) if args[0] == 'notes' else args[0]} (subprocess)"


def timed_git(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(args: Any, *rest: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(args, *rest, **kwargs)
        finally:
            _add(_git_label(args), time.perf_counter() - t)

    return wrapper


def timed_import(label: str, module: str) -> None:
    t = time.perf_counter()
    importlib.import_module(module)
    _add(label, time.perf_counter() - t)


def patch(obj: Any, attr: str, label: str) -> None:
    setattr(obj, attr, timed(label, getattr(obj, attr)))


def run_cli(argv: list[str]) -> None:
    from gitreg.cli import main

    sys.argv = ["gitreg", *argv]
    try:
        main()
    except SystemExit as e:
        if e.code not in (0, None):
            raise


def instrument(command: str) -> None:
    """Import in a fixed order so that each import line is only what it adds, then wrap."""
    timed_import("import gitreg.cli (typer, click, gitreg.errors, pydantic via render)", "gitreg.cli")
    timed_import("import gitreg.registry (lazy in the CLI: pydantic models, ruamel.yaml)", "gitreg.registry")
    import gitreg.registry as registry
    from gitreg import catalog, gitrepo, listing
    from gitreg.cli import render
    from gitreg.context import Context
    from gitreg.listing import cache as list_cache
    from gitreg.listing import query as list_query

    gitrepo.run_git = timed_git(gitrepo.run_git)
    patch(Context, "__init__", "Context() (git rev-parse --show-toplevel)")
    if command == "list":
        # --json: the list cache path
        patch(listing, "versions_json", "listing.versions_json() total (--json)")
        patch(list_cache.ListCache, "open", "  ListCache.open (sqlite: read rows, crc32)")
        patch(gitrepo.GitRepo, "version_tag_ids", "  GitRepo.version_tag_ids (for-each-ref names+ids)")
        patch(gitrepo.GitRepo, "note_ids", "  GitRepo.note_ids (notes list)")
        patch(list_query, "_held_stages", "  listing._held_stages (models.yaml)")
        patch(list_query, "_fill", "  listing._fill (read what is not cached)")
        patch(list_query, "_list_row", "    listing._list_row (parse a tag, render its row)")
        patch(list_cache.ListCache, "save", "  ListCache.save (write when changed)")
        patch(render, "emit_json_bytes", "render.emit_json_bytes (write)")
        # the table: catalog.versions()
        patch(gitrepo, "_parse_tag_records", "  parse for-each-ref output -> TagRecord")
        patch(catalog, "versions", "catalog.versions() total")
        patch(gitrepo.GitRepo, "version_tags", "  GitRepo.version_tags() (git + parse)")
        patch(gitrepo.GitRepo, "notes", "  GitRepo.notes() (notes list + cat-file)")
        patch(catalog, "is_version", "  is_version (filter)")
        patch(catalog, "parse_version", "  parse_version (sort key)")
        patch(catalog, "parse_tag_message", "  parse_tag_message (pydantic TagSummary)")
        patch(catalog, "version_info", "  catalog.version_info (VersionInfo, note, stages)")
        patch(catalog, "parse_validation_note", "    parse_validation_note (pydantic ValidationRecord)")
        patch(Context, "manifest", "    Context.manifest() (models.yaml, cached)")
        patch(render, "version_list", "render.version_list total (JSON out)")
        patch(render, "emit_json", "  render.emit_json (serialize + write)")
        return
    timed_import("import gitreg.store", "gitreg.store")
    timed_import("import dvc.repo (first use of DVC)", "dvc.repo")
    from gitreg import store as bundles
    from gitreg.store import dvc as store_dvc

    if command == "register":
        patch(registry.Registry, "register", "Registry.register() total")
        patch(bundles, "scan_bundle", "  scan_bundle")
        patch(bundles, "copy_bundle", "  copy_bundle (md5 + copy into models/<model>/)")
        patch(bundles.DvcStore, "track", "  DvcStore.track (dvc add: md5, copy to .dvc/cache)")
        patch(bundles.DvcStore, "upload", "  DvcStore.upload (dvc push to the remote)")
        patch(gitrepo.GitRepo, "commit_paths", "  GitRepo.commit_paths (git add + commit)")
        patch(gitrepo.GitRepo, "create_tag", "  GitRepo.create_tag")
    elif command == "pull":
        timed_import("import dvc.api (DVCFileSystem)", "dvc.api")
        import dvc.api

        patch(registry.Registry, "pull", "Registry.pull() total")
        patch(catalog, "get", "  catalog.get (tag + note)")
        patch(bundles.DvcStore, "fetch_verified", "  DvcStore.fetch_verified total")
        patch(dvc.api, "DVCFileSystem", "    DVCFileSystem(repo, rev) (open the revision)")
        patch(store_dvc, "copy_verified", "    copy_verified (stream from DVC + md5 + write)")
    patch(render, "emit_json", "render.emit_json")


def phases(argv: list[str]) -> dict[str, Any]:
    instrument(argv[0])
    t = time.perf_counter()
    run_cli(argv)
    _add("gitreg.cli.main() total (after the imports above)", time.perf_counter() - t)
    _add("process: from interpreter start of this script to exit", time.perf_counter() - T_START)
    return {k: {"calls": int(v[0]), "seconds": round(v[1], 4)} for k, v in TIMES.items()}


# Frames that only pass calls through (the CLI framework, the import machinery, this script).
_PASS_THROUGH = (
    "<frozen importlib",
    "typer/",
    "click/",
    "_profile_cli.py",
    "contextlib.py",
    "functools.py",
    "funcy/",
    "(<built-in method builtins.",
    "(<built-in method _imp.",
    "importlib/__init__.py",
    "gitreg/cli/__init__.py",
)


def cprofile(argv: list[str], top: int = 25) -> dict[str, Any]:
    """cProfile of the whole command: the import total, then the top functions by cumulative
    time (pass-through frames left out) and by self time."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    run_cli(argv)
    prof.disable()
    stats = pstats.Stats(prof)
    rows = []
    imports = 0.0
    total = 0.0
    for (file, line, name), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        short = file.split("site-packages/")[-1].split("/src/")[-1].split("/lib/python3.11/")[-1]
        label = f"{short}:{line}({name})"
        if name == "_find_and_load":
            imports = max(imports, ct)
        if name == "run_cli":
            total = ct
        rows.append({"function": label, "calls": nc, "tottime": round(tt, 4), "cumtime": round(ct, 4)})
    cumulative = [r for r in rows if not any(p in r["function"] for p in _PASS_THROUGH)]
    cumulative.sort(key=lambda r: -r["cumtime"])
    own = sorted(rows, key=lambda r: -r["tottime"])
    return {
        "total_s": round(total, 4),
        "imports_s": round(imports, 4),
        "cumulative": cumulative[:top],
        "self": own[:top],
    }


def main() -> None:
    argv = sys.argv[1:]
    mode = "phases"
    if argv[:1] == ["--mode"] and len(argv) > 1:
        mode, argv = argv[1], argv[2:]
    if not argv or argv[0] in ("-h", "--help") or mode not in ("phases", "cprofile"):
        sys.exit(__doc__)
    result: Any = cprofile(argv) if mode == "cprofile" else phases(argv)
    sys.stdout.flush()
    sys.stderr.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
