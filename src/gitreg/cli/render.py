"""Result -> output in one call, for callers outside the commands (the demo, benchmarks).

Each function takes a result and whether JSON was asked for, and hands both to the one output
sink (:class:`gitreg.cli.output.Output`) with the result's view from :mod:`gitreg.cli.views`.
Nothing here writes to a stream itself or builds markup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitreg.cli import views
from gitreg.cli._progress import TransferProgress
from gitreg.cli.output import Output, error_line
from gitreg.cli.output import console as _sink_console
from gitreg.cli.views import sparkline

if TYPE_CHECKING:
    from gitreg.cli._types import (
        ChangeResult,
        CheckReport,
        CleanupResult,
        Comparison,
        DoctorReport,
        Health,
        InitResult,
        LineageNode,
        ModelStatus,
        PullResult,
        RegisterResult,
        Report,
        StageChange,
        ValidationRecord,
        VersionInfo,
    )
    from gitreg.errors import GitregError

__all__ = ["TransferProgress", "console", "sparkline"]


_narrator: Any = None


def console() -> Any:
    """A rich console on stdout that *does* read markup, for a caller's own narration (the
    demo's step titles). Never print registry data through it: views go through the sink."""
    global _narrator
    if _narrator is None:
        from rich.console import Console

        _narrator = Console(highlight=False, soft_wrap=False, width=_sink_console().width)
    return _narrator


def out(text: str) -> None:
    Output().line(text)


def emit_json(data: Any) -> None:
    Output(json=True).json_value(data)


def error(e: GitregError) -> None:
    error_line(e.message, e.hint)


def init_result(r: InitResult, as_json: bool) -> None:
    Output(json=as_json).emit(r, views.init_result)


def register_result(r: RegisterResult, as_json: bool) -> None:
    Output(json=as_json).emit(r, views.register_result)


def version_list(rows: list[VersionInfo], as_json: bool) -> None:
    Output(json=as_json).emit(rows, views.version_list)


def version_detail(v: VersionInfo, as_json: bool) -> None:
    Output(json=as_json).emit(v, views.version_detail)


def comparison(cmp: Comparison, as_json: bool) -> None:
    Output(json=as_json).emit(cmp, views.comparison)


def pull_result(r: PullResult, as_json: bool) -> None:
    Output(json=as_json).emit(r, views.pull_result)


def validation(rec: ValidationRecord, as_json: bool, recorded: bool) -> None:
    Output(json=as_json).emit(rec, lambda o, r: views.validation(o, r, recorded=recorded))


def change_result(r: ChangeResult, as_json: bool) -> None:
    Output(json=as_json).emit(r, views.change_result)


def doctor_report(r: DoctorReport, as_json: bool) -> None:
    Output(json=as_json).emit(r, views.doctor_report)


def check_report(r: CheckReport, as_json: bool, github: bool) -> None:
    sink = Output(json=as_json)
    sink.emit(r, views.check_report)
    if github:
        views.github_annotations(sink, r)


def history(changes: list[StageChange], as_json: bool) -> None:
    Output(json=as_json).emit(changes, views.history)


def status(models: list[ModelStatus], as_json: bool) -> None:
    Output(json=as_json).emit(models, views.status)


def server_status(h: Health, as_json: bool) -> None:
    Output(json=as_json).emit(h, views.server_status)


def cleanup_result(r: CleanupResult, as_json: bool) -> None:
    Output(json=as_json).emit(r, views.cleanup_result)


def report(r: Report, as_json: bool) -> None:
    Output(json=as_json).emit(r, views.report)


def html_written(path: str, r: Report) -> None:
    views.html_written(Output(), path, r)


def lineage(node: LineageNode, as_json: bool) -> None:
    Output(json=as_json).emit(node, views.lineage)
