"""Every CLI command has help text, a README entry, and a --json flag where it reports data."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gitreg.cli import app

README = (Path(__file__).parents[2] / "README.md").read_text()
COMMANDS = sorted(
    c.name or c.callback.__name__.rstrip("_") for c in app.registered_commands if c.callback is not None
)


def test_the_cli_has_the_core_commands():
    assert {"init", "register", "list", "show", "compare", "pull", "validate", "demo"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_command_has_help_and_a_readme_entry(name: str):
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) > 3
    assert f"`gitreg {name}" in README, f"README's command table lacks gitreg {name}"


@pytest.mark.parametrize("name", [c for c in COMMANDS if c != "demo"])
def test_data_commands_take_json(name: str):
    result = CliRunner().invoke(app, [name, "--help"])
    assert "--json" in result.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["promote"], "Missing argument 'version'"),
        (["list", "--bogus"], "No such option: --bogus"),
        (["list", "--limit", "x"], "Invalid value for '--limit'"),
        (["no-such-command"], "No such command"),
    ],
)
def test_command_line_errors_are_one_line_and_exit_1(args: list[str], says: str, tmp_path: Path) -> None:
    from gitreg.testing.cli import run_cli

    proc = run_cli("-C", str(tmp_path), *args)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], proc.stderr
    assert "--help" in lines[0] and proc.stdout == ""


def test_bare_gitreg_prints_the_help(tmp_path: Path) -> None:
    from gitreg.testing.cli import run_cli

    proc = run_cli(cwd=tmp_path)
    assert proc.returncode == 0 and "Commands" in proc.stdout and "register" in proc.stdout
