"""Transfer progress bars on stderr (register, pull, the first fetch of a --repo mirror), when
stderr is a terminal."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from gitreg.cli.output import console, visible


class TransferProgress:
    """A callable progress(file, done, total) drawing rich bars on stderr when it is a terminal.
    File names come from the bundle: they are shown as text (no markup, controls escaped)."""

    def __init__(self, min_bytes: int = 8 << 20) -> None:
        self.min_bytes = min_bytes
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self.enabled = sys.stderr.isatty()

    def __enter__(self) -> TransferProgress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, name: str, done: int, total: int) -> None:
        if not self.enabled or total < self.min_bytes:
            return
        self._draw(name, done, total)

    def git(self, report: Any) -> None:
        """One of git's progress reports (gitreg.gitrepo.TransferProgress): a bar per stage."""
        if self.enabled and report.total:
            self._draw(f"{report.operation}: {report.stage}", report.current, report.total)

    def _draw(self, name: str, done: int, total: int) -> None:
        if self._progress is None:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=console(stderr=True),
                transient=True,
            )
            self._progress.start()
        if name not in self._tasks:
            self._tasks[name] = self._progress.add_task(visible(name), total=total)
        self._progress.update(self._tasks[name], completed=done)
