"""The typer app: global options, the commands in help order, and the entry point.

Every command runs through :func:`funnel`, so every exception — a refusal, an OSError, a bug —
reaches :func:`gitreg.cli.error_table.handle` and becomes one line on stderr and an exit code.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from gitreg import __version__
from gitreg.cli import error_table
from gitreg.cli._context import debug, state
from gitreg.cli.commands import lifecycle, maintenance, registry, reports, serving
from gitreg.cli.output import Output, error_line

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="gitreg",
    help="A Git-native model registry: versions are Git tags, bytes live in DVC, "
    "stages change by pull request.",
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def funnel(fn: F) -> F:
    """Run a command; any exception but typer's own exits goes to the error table."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except (Exception, KeyboardInterrupt) as e:
            raise typer.Exit(error_table.handle(e, debug=debug())) from None

    return wrapper  # type: ignore[return-value]


def _version_callback(value: bool) -> None:
    if value:
        Output().line(f"gitreg {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def main_options(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Option("-C", help="Run as if gitreg was started in PATH (the registry repo).")
    ] = Path("."),
    traceback: Annotated[
        bool, typer.Option("--traceback", help="Show the full traceback on errors.")
    ] = False,
    repo: Annotated[
        str | None,
        typer.Option(
            "--repo",
            help="Read the registry at this Git remote (URL or path) without a clone: a cached "
            "bare mirror (list, show, resolve, compare, history, status, pull, lineage, report, check).",
        ),
    ] = None,
    branch: Annotated[
        str | None,
        typer.Option(
            "--branch", help="With --repo: the branch whose models.yaml is read (default: the remote's)."
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    state.path = path
    state.traceback = traceback
    state.repo = repo
    state.branch = branch
    state.command = ctx.invoked_subcommand
    if ctx.invoked_subcommand is None:  # bare `gitreg`: the help
        typer.echo(ctx.get_help())
        raise typer.Exit()


# The commands in the order `gitreg --help` lists them.
COMMANDS: list[tuple[str, Callable[..., None]]] = [
    ("init", registry.init),
    ("register", registry.register),
    ("list", registry.list_),
    ("show", registry.show),
    ("resolve", registry.resolve),
    ("compare", registry.compare),
    ("pull", registry.pull),
    ("validate", registry.validate),
    ("promote", lifecycle.promote),
    ("deploy", lifecycle.deploy),
    ("rollback", lifecycle.rollback),
    ("check", lifecycle.check),
    ("history", lifecycle.history),
    ("status", lifecycle.status),
    ("serve", serving.serve),
    ("cleanup", maintenance.cleanup),
    ("doctor", maintenance.doctor),
    ("report", reports.report),
    ("lineage", reports.lineage),
    ("demo", maintenance.demo),
]
for _name, _fn in COMMANDS:
    app.command(_name)(funnel(_fn))


def main() -> None:
    """Console-script entry point. Errors of the command line itself (a missing argument, an
    unknown option, a value of the wrong type) are one line and exit 1, like every refusal."""
    try:
        rc = app(standalone_mode=False)
    except typer.Abort:
        sys.stderr.write("aborted\n")
        sys.exit(130)
    except typer.TyperException as e:  # the parser's usage errors
        if debug():
            raise
        where = getattr(getattr(e, "ctx", None), "command_path", None) or "gitreg"
        fmt = getattr(e, "format_message", None)  # names the parameter ("Invalid value for '--limit'")
        message = fmt() if callable(fmt) else str(e)
        error_line(" ".join(message.split("\n")), f"see {where} --help")
        sys.exit(1)
    except (Exception, KeyboardInterrupt) as e:  # raised outside a command (e.g. by a callback)
        sys.exit(error_table.handle(e, debug=debug()))
    sys.exit(rc if isinstance(rc, int) else 0)


__all__ = ["COMMANDS", "app", "funnel", "main"]
