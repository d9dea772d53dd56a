"""Reading the registry as a whole: report (terminal, JSON or one HTML file) and lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gitreg.cli import views
from gitreg.cli._context import JsonOpt, RefOpt, VersionArg, registry
from gitreg.cli.output import Output
from gitreg.errors import GitregError


def report(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    json: JsonOpt = False,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Write one self-contained HTML file (charts as inline SVG) to FILE."),
    ] = None,
) -> None:
    """Totals by status, stage and algorithm, current production, promotion history, metrics over versions."""
    if json and html is not None:
        raise GitregError("--json and --html are exclusive", "pick one: gitreg report --json, or --html FILE")
    if html is not None and html.is_dir():
        raise GitregError(f"--html {html} is a folder", "name a file, e.g. --html report.html")
    result = registry().report(model)
    if html is None:
        Output(json=json).emit(result, views.report)
        return
    from gitreg.cli.html_report import render_html
    from gitreg.manifest import atomic_write

    target = html.absolute()
    if not target.parent.is_dir():
        raise GitregError(f"--html: folder {target.parent} does not exist", "create it first")
    atomic_write(target, render_html(result).encode())
    views.html_written(Output(), str(target), result)


def lineage(
    version: VersionArg,
    depth: Annotated[int, typer.Option(help="Show at most N versions of the parent chain (1-200).")] = 100,
    ref: RefOpt = None,
    json: JsonOpt = False,
) -> None:
    """A version's ancestry through `parent`: each with data_version and code_commit, as a tree."""
    reg = registry()
    Output(json=json).emit(reg.lineage(reg.version_of(version, ref), max_depth=depth), views.lineage)
