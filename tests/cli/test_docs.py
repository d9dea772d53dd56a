"""The documentation site: the CLI reference is the CLI's own (it cannot drift), and the site
builds with ``mkdocs build --strict`` into pages that load nothing from the network."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gitreg.cli.app import COMMANDS
from gitreg.cli.reference import render

ROOT = Path(__file__).resolve().parents[2]
CLI_PAGE = ROOT / "docs" / "cli.md"

# What a page or stylesheet would load from elsewhere: src/href of the tags that fetch (an <a>
# link is only a link), CSS url(...) and @import.
FETCHING_TAG = re.compile(
    r"<(?:script|link|img|iframe|source|video|audio|embed|object)\b[^>]*?\b(?:src|href|data)\s*=\s*"
    r"[\"']?(https?:)?//",
    re.IGNORECASE,
)
CSS_REMOTE = re.compile(r"(?:url\(\s*[\"']?|@import\s+[\"']?)(?:https?:)?//", re.IGNORECASE)


def test_the_cli_reference_is_a_fresh_render_of_the_cli() -> None:
    assert CLI_PAGE.read_text(encoding="utf-8") == render(), (
        "docs/cli.md differs from the CLI: regenerate it with `make docs-cli` and commit it"
    )


def test_the_cli_reference_has_every_command_and_the_completion_options() -> None:
    page = render()
    for name, _ in COMMANDS:
        assert f"## `gitreg {name}`" in page, name
    assert "`--install-completion`" in page and "`--show-completion`" in page


def test_the_reference_keeps_help_text_from_becoming_markup() -> None:
    page = render()
    assert "keep\\_last" in page  # not an emphasis
    assert "`git revert`" in page  # code spans stay code


def test_remote_asset_patterns_catch_what_they_should() -> None:
    assert FETCHING_TAG.search('<link rel="stylesheet" href="https://fonts.googleapis.com/css">')
    assert FETCHING_TAG.search("<script src=//cdn.example/x.js></script>")
    assert not FETCHING_TAG.search('<a href="https://github.com/huggingface/safetensors">')
    assert not FETCHING_TAG.search('<link rel="stylesheet" href="assets/main.css">')
    assert CSS_REMOTE.search("@font-face{src:url(https://fonts.gstatic.com/a.woff2)}")
    assert CSS_REMOTE.search('@import "https://x.example/y.css";')
    assert not CSS_REMOTE.search("background:url(data:image/svg+xml;charset=utf-8,<svg>)")


@pytest.mark.slow
def test_the_site_builds_strict_and_loads_nothing_from_the_network(tmp_path: Path) -> None:
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    pages = sorted(site.rglob("*.html"))
    assert {"index.html", "cli.html", "getting-started.html", "operations.html"} <= {p.name for p in pages}
    remote = [str(p.relative_to(site)) for p in pages if FETCHING_TAG.search(p.read_text(encoding="utf-8"))]
    remote += [
        str(p.relative_to(site))
        for p in site.rglob("*.css")
        if CSS_REMOTE.search(p.read_text(encoding="utf-8", errors="replace"))
    ]
    assert not remote, f"the site loads assets from the network (fonts, scripts, css): {remote}"
    assert "--install-completion" in (site / "getting-started.html").read_text(encoding="utf-8")


def test_the_readme_command_table_is_the_cli_in_order() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `gitreg ([a-z-]+)` \|", readme, flags=re.MULTILINE)
    assert rows == [name for name, _ in COMMANDS], "README's command table: one row per command, in CLI order"


def test_the_readme_links_every_docs_page_and_only_pages_that_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\((docs/[^)#]+)", readme))
    assert all((ROOT / link).is_file() for link in linked), linked
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} - {"docs/index.md"}
    assert pages <= linked, f"README links no {sorted(pages - linked)}"
