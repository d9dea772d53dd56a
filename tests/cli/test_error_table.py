"""The error funnel: one table from exception type to message, one line on stderr, an exit code."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gitreg.cli.app import funnel
from gitreg.cli.error_table import DEBUG_HINT, FORMATTERS, explain, handle
from gitreg.errors import GitregError, ModelNotFound
from gitreg.testing.cli import run_cli


class ExoticRefusal(GitregError):
    """A subclass the table has never heard of, with its own attributes."""

    def __init__(self, thing: str) -> None:
        super().__init__(f"cannot frob {thing!r}", "unfrob it first")
        self.thing = thing


@pytest.mark.parametrize(
    ("exc", "line", "code"),
    [
        (GitregError("plain refusal", "the fix"), "error: plain refusal — the fix", 1),
        (GitregError("no hint"), "error: no hint", 1),
        (
            ModelNotFound("nope"),
            "error: no model 'nope' in this registry — run `gitreg list` to see the models",
            1,
        ),
        (ExoticRefusal("x"), "error: cannot frob 'x' — unfrob it first", 1),
        (
            OSError(errno.ENOSPC, "No space left on device", "models/policy/policy.pt"),
            "error: no space left on device writing models/policy/policy.pt"
            " — free space or move the repository",
            1,
        ),
        (
            PermissionError(errno.EACCES, "Permission denied", "/srv/reg/models.yaml"),
            "error: permission denied: /srv/reg/models.yaml — check the owner and mode of the path (ls -ld)",
            1,
        ),
        (
            OSError(errno.EROFS, "Read-only file system", "/ro/x"),
            "error: read-only file system: /ro/x — run it on a writable copy of the repository",
            1,
        ),
        (
            OSError(errno.ENOTSUP, "Operation not supported", "/a", None, "/b"),
            "error: Operation not supported: /a -> /b — check the path, its permissions and the disk",
            1,
        ),
        (
            MemoryError(),
            "error: out of memory — close other programs, or run it on a machine with more memory",
            1,
        ),
        (KeyboardInterrupt(), "error: interrupted", 130),
        (ValueError("a bug\nsecond line"), f"error: unexpected ValueError: a bug — {DEBUG_HINT}", 1),
    ],
)
def test_each_type_gets_its_line_and_exit_code(exc: BaseException, line: str, code: int, capsys):
    assert handle(exc, debug=False) == code
    err = capsys.readouterr().err
    assert err == line + "\n"


def test_the_table_resolves_the_most_specific_type():
    assert set(FORMATTERS) >= {GitregError, OSError}
    assert explain(ExoticRefusal("y")) == ("cannot frob 'y'", "unfrob it first")
    assert explain(FileNotFoundError(errno.ENOENT, "x", "/nope")) == (
        "no such file or directory: /nope",
        "check the path",
    )
    assert explain(RuntimeError("?")) is None


def test_untrusted_text_in_an_error_stays_on_one_line(capsys):
    handle(GitregError("no version '\x1b[2J\n error: fake'", "hint\rhere"), debug=False)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "\r" not in err
    assert "\\x1b[2J⏎ error: fake" in err and "hint\\rhere" in err


def test_debug_prints_the_traceback_then_the_line(capsys):
    try:
        raise ValueError("boom")
    except ValueError as e:
        assert handle(e, debug=True) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last)")
    assert err.rstrip().splitlines()[-1] == f"error: unexpected ValueError: boom — {DEBUG_HINT}"


# -- through a command ------------------------------------------------------------------------------
def make_app(exc: BaseException) -> typer.Typer:
    app = typer.Typer()

    def fail() -> None:
        raise exc

    def ok() -> None:
        raise typer.Exit(3)  # typer's own exits pass through the funnel untouched

    app.command("fail")(funnel(fail))
    app.command("ok")(funnel(ok))
    return app


def test_an_unexpected_exception_in_a_command_is_one_line_naming_traceback(monkeypatch):
    monkeypatch.delenv("GITREG_DEBUG", raising=False)
    result = CliRunner().invoke(make_app(KeyError("k")), ["fail"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--traceback" in lines[0] and "GITREG_DEBUG" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_gitreg_debug_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("GITREG_DEBUG", "1")
    result = CliRunner().invoke(make_app(KeyError("k")), ["fail"])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr and "KeyError" in result.stderr


def test_typer_exits_pass_through(monkeypatch):
    assert CliRunner().invoke(make_app(KeyError("k")), ["ok"]).exit_code == 3


def test_an_oserror_in_a_real_command_is_one_line(tmp_path: Path, registry, make_bundle):
    """`pull --out` under a regular file: the OSError from the file system is one line."""
    version = registry.register(make_bundle(1), "policy").version
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = run_cli("pull", version, "--out", str(blocker / "sub"), cwd=Path(registry.root))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert str(blocker) in lines[0] and "Traceback" not in proc.stderr
    assert "already exists" in lines[0]  # mkdir(parents=True) meets the file: FileExistsError
