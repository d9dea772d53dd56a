"""The documentation site: the CLI reference is the CLI's own (it cannot drift)."""

from __future__ import annotations

from pathlib import Path

from gitreg.cli.app import COMMANDS
from gitreg.cli.reference import render

ROOT = Path(__file__).resolve().parents[2]
CLI_PAGE = ROOT / "docs" / "cli.md"


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
