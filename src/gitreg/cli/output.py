"""The one output sink of the command line: human (rich) or JSON, chosen once per invocation.

Every view writes through an :class:`Output`. Views hand it *pieces* — plain strings or
``(text, style)`` pairs — and never markup: the sink builds rich ``Text`` objects itself, so a
``[/]`` or ``[link=…]`` in a model's metadata is shown as those characters, never interpreted.
Every string is also passed through :func:`visible`, which shows terminal control characters
(ESC, CSI, OSC, C1, DEL, bidi overrides, newlines inside a field) as escapes instead of sending
them to the terminal, and table cells are cut at :data:`CELL_LIMIT` characters with a marker.

JSON output is the data untouched: the values are what the registry returned; only characters
that a terminal could act on (C1 controls, DEL, bidi overrides) are written as ``\\uXXXX``
escapes, which any JSON parser reads back as the same string.
"""

from __future__ import annotations

import json as jsonlib
import os
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO, TypeVar

from pydantic import BaseModel

R = TypeVar("R")

Piece = str | tuple[str, str]  # text, or (text, rich style); the text is always escaped
CELL_LIMIT = 120  # characters of one table cell before it is cut (the JSON form has it all)

# -- escaping --------------------------------------------------------------------------------------
_ESCAPES: dict[int, str] = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_ESCAPES.update({0x0A: "⏎", 0x0D: "\\r", 0x09: "\\t"})
# Bidi overrides and isolates (they reorder what the terminal shows), line/paragraph separators
# and lone surrogates (which cannot even be encoded on the way out).
for _c in (0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)):
    _ESCAPES[_c] = f"\\u{_c:04x}"
for _c in range(0xD800, 0xE000):
    _ESCAPES[_c] = f"\\u{_c:04x}"


def visible(text: object) -> str:
    """``text`` as it may reach a terminal: every control character shown as an escape
    (``\\x1b``, ``\\r``, ``\\x9b``, ``\\u202e``), a newline as ``⏎``; other text unchanged."""
    s = text if isinstance(text, str) else str(text)
    if s.isprintable():  # the common case: nothing to do (no control, separator or format char)
        return s
    return s.translate(_ESCAPES)


def clip(text: str, limit: int = CELL_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, with a marker saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… (+{len(text) - limit} chars)"


def one_line(text: object) -> str:
    """A message for one line of stderr: control characters escaped, newlines shown as ``⏎``."""
    return visible(text)


# Characters a terminal acts on that JSON does not require escaping, as UTF-8 byte sequences:
# C1 controls (U+0080-U+009F), DEL, U+200E/F, U+2028-U+202E and U+2066-U+2069.
_JSON_RISKY = re.compile(rb"\xc2[\x80-\x9f]|\x7f|\xe2\x80[\x8e\x8f\xa8-\xae]|\xe2\x81[\xa6-\xa9]")


def _json_escape(match: re.Match[bytes]) -> bytes:
    return b"\\u%04x" % ord(match.group().decode())


_ASCII = bytes(range(0x80))


def safe_json(raw: bytes) -> bytes:
    """JSON text with terminal-active characters written as ``\\uXXXX`` (the same values).

    The check runs on the non-ASCII bytes only (``bytes.translate`` drops the rest at C speed;
    UTF-8 sequences stay whole), so 10,000 rows cost milliseconds, and the rewrite happens only
    when such a character is really there."""
    if b"\x7f" not in raw and _JSON_RISKY.search(raw.translate(None, _ASCII)) is None:
        return raw
    return _JSON_RISKY.sub(_json_escape, raw)


# -- rich, loaded on first use -------------------------------------------------------------------
_consoles: dict[str, Any] = {}


def console(stderr: bool = False) -> Any:
    """The rich console of stdout (or stderr): no markup, no emoji codes, no highlighting —
    nothing in a string is ever interpreted."""
    key = "err" if stderr else "out"
    if key not in _consoles:
        from rich.console import Console

        c = Console(stderr=stderr, markup=False, emoji=False, highlight=False, soft_wrap=False)
        if not stderr and not c.is_terminal and "COLUMNS" not in os.environ:
            c.width = 200  # pipes and logs: don't clip tables at 80 columns
        _consoles[key] = c
    return _consoles[key]


def text(*pieces: Piece, limit: int | None = None) -> Any:
    """A rich ``Text`` of escaped pieces (each cut to ``limit`` when given)."""
    from rich.text import Text

    out = Text()
    room = limit if limit is not None else -1
    cut = 0  # characters left out
    for piece in pieces:
        s, style = (piece, "") if isinstance(piece, str) else piece
        s = visible(s)
        if room >= 0:
            if cut or len(s) > room:
                cut += len(s) - room
                s = s[:room]
            room -= len(s)
        out.append(s, style=style or None)
    if cut:
        out.append(f"… (+{cut} chars)")
    return out


Cell = Piece | list[Piece]


class Table:
    """A rich table whose cells are escaped and cut: the only table a view can build."""

    def __init__(
        self,
        *columns: str | tuple[str, dict[str, Any]],
        title: str | None = None,
        grid: bool = False,
        show_header: bool = True,
        limit: int = CELL_LIMIT,
        **options: Any,
    ) -> None:
        from rich.table import Table as RichTable

        self.limit = limit
        if grid:
            self.rich = RichTable.grid(padding=options.pop("padding", (0, 2)), **options)
        else:
            self.rich = RichTable(
                title=text(title) if title else None,
                title_justify="left",
                box=None,
                header_style="bold",
                show_header=show_header,
                **options,
            )
        for col in columns:
            name, opts = (col, {}) if isinstance(col, str) else col
            self.rich.add_column(text(name), **opts)

    def row(self, *cells: Cell) -> None:
        self.rich.add_row(
            *(text(*c, limit=self.limit) if isinstance(c, list) else text(c, limit=self.limit) for c in cells)
        )


class Tree:
    """A rich tree whose labels are escaped (for `gitreg lineage`). A label is a list of lines,
    each a list of pieces."""

    def __init__(self, label: list[list[Piece]]) -> None:
        from rich.tree import Tree as RichTree

        self.rich = RichTree(_lines(label), guide_style="dim")

    def add(self, label: list[list[Piece]]) -> Tree:
        child = Tree.__new__(Tree)
        child.rich = self.rich.add(_lines(label))
        return child


def _lines(lines: list[list[Piece]]) -> Any:
    """Lines of pieces as one Text; the newlines between them are the sink's own."""
    from rich.text import Text

    return Text("\n").join(text(*line, limit=CELL_LIMIT) for line in lines)


# -- the sink -------------------------------------------------------------------------------------
class Output:
    """Where a command's output goes: JSON on stdout, or text and tables for people.

    ``emit(result, view)`` is the one decision point: JSON mode serializes ``result``; human mode
    calls ``view(self, result)``, and the view writes with :meth:`line`, :meth:`note`,
    :meth:`table` and :meth:`tree`.
    """

    def __init__(self, *, json: bool = False) -> None:
        self.json = json

    # -- the decision ------------------------------------------------------------------------
    def emit(self, result: R, view: Callable[[Output, R], None]) -> None:
        if self.json:
            self.json_value(result)
        else:
            view(self, result)

    # -- JSON -----------------------------------------------------------------------------------
    def json_value(self, data: Any) -> None:
        """``data`` as JSON on stdout. Models are serialized by pydantic-core (json.dumps with
        indent falls back to the pure-Python encoder: too slow for 10,000 rows)."""
        if isinstance(data, BaseModel) or (
            isinstance(data, list) and data and all(isinstance(d, BaseModel) for d in data)
        ):
            from pydantic import TypeAdapter

            kind = type(data) if isinstance(data, BaseModel) else list[type(data[0])]  # type: ignore[misc]
            raw = TypeAdapter(kind).dump_json(data, indent=2, by_alias=True)
        else:
            raw = jsonlib.dumps(data, indent=2, ensure_ascii=False).encode()
        self.json_bytes(raw + b"\n")

    def json_bytes(self, raw: bytes) -> None:
        """JSON text made elsewhere (ending with a newline), written to stdout in one go."""
        raw = safe_json(raw)
        binary = getattr(sys.stdout, "buffer", None)
        if binary is None:  # a text-only stream (e.g. redirected to StringIO by an embedding)
            sys.stdout.write(raw.decode())
            return
        sys.stdout.flush()
        binary.write(raw)
        sys.stdout.flush()

    # -- people -----------------------------------------------------------------------------
    def line(self, *pieces: Piece) -> None:
        """One line on stdout (not wrapped: long paths stay one line for scripts)."""
        console().print(text(*pieces), soft_wrap=True)

    def note(self, *pieces: Piece) -> None:
        """One line on stderr: what happened, next to the result on stdout."""
        console(stderr=True).print(text(*pieces), soft_wrap=True)

    def table(self, table: Table) -> None:
        console().print(table.rich)

    def tree(self, tree: Tree) -> None:
        console().print(tree.rich)

    def raw(self, line: str, *, stream: TextIO | None = None) -> None:
        """A line whose every character was made safe by the caller (GitHub annotations)."""
        (stream or sys.stdout).write(line + "\n")


# -- errors (the funnel formats them; this writes them) ----------------------------------------
def error_line(message: str, hint: str = "") -> None:
    """``error: MESSAGE — HINT`` as one line on stderr, every character visible."""
    line = f"error: {one_line(message)}" + (f" — {one_line(hint)}" if hint else "")
    sys.stderr.write(line + "\n")


def join_pieces(parts: Iterable[Piece], sep: str = ", ") -> list[Piece]:
    """Pieces joined by a separator (the separator is the sink's own text)."""
    out: list[Piece] = []
    for i, p in enumerate(parts):
        if i:
            out.append(sep)
        out.append(p)
    return out
