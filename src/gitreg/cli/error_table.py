"""The one error funnel of the command line.

:data:`FORMATTERS` maps an exception type to a function giving ``(message, hint)``; the most
specific type in an exception's MRO wins, so every :class:`GitregError` subclass — also ones
added later — prints its own message and hint, and only the types that need a better wording
than their own get an entry. :func:`handle` prints one line and returns the exit code:

- a GitregError: ``error: MESSAGE — HINT``, exit 1;
- an OSError: one line that says what failed, on which path, and how to fix it, exit 1;
- KeyboardInterrupt: ``error: interrupted``, exit 130;
- anything else (a bug): one line naming ``--traceback`` and GITREG_DEBUG, exit 1.

With ``--traceback`` (or GITREG_DEBUG=1) the traceback is printed first.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import Any

from gitreg.cli.output import error_line
from gitreg.errors import GitregError, describe_os_error

Formatter = Callable[[Any], tuple[str, str]]

DEBUG_HINT = "rerun with --traceback (or GITREG_DEBUG=1) to see where, and report it"


def _gitreg(e: GitregError) -> tuple[str, str]:
    return e.message, e.hint


def _where(e: OSError) -> str:
    names = [str(n) for n in (e.filename, e.filename2) if n is not None]
    return " -> ".join(names)


def _os_error(e: OSError) -> tuple[str, str]:
    return describe_os_error(e.errno, e.strerror, _where(e) or "(no path given)")


def _memory(e: MemoryError) -> tuple[str, str]:
    return "out of memory", "close other programs, or run it on a machine with more memory"


FORMATTERS: dict[type[BaseException], Formatter] = {
    GitregError: _gitreg,
    OSError: _os_error,
    MemoryError: _memory,
}


def explain(exc: BaseException) -> tuple[str, str] | None:
    """``(message, hint)`` of the most specific entry of :data:`FORMATTERS`, or None (a bug)."""
    for kind in type(exc).__mro__:
        fmt = FORMATTERS.get(kind)
        if fmt is not None:
            return fmt(exc)
    return None


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush fails no more."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (an embedding's StringIO)
        pass


def handle(exc: BaseException, *, debug: bool) -> int:
    """Print ``exc`` as one line on stderr (after its traceback when ``debug``); the exit code."""
    if isinstance(exc, KeyboardInterrupt):
        error_line("interrupted")
        return 130
    if isinstance(exc, BrokenPipeError):  # `gitreg list | head`: the reader has all it wanted
        _silence_stdout()
        return 141  # what a shell reports for SIGPIPE
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    explained = explain(exc)
    if explained is None:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        error_line(f"unexpected {type(exc).__name__}" + (f": {first}" if first else ""), DEBUG_HINT)
        return 1
    error_line(*explained)
    return 1
