"""The pre-scan of models.yaml: one linear pass over the text that refuses what the YAML
scanner would be slow on (it is quadratic in nesting) before it runs. Pure."""

from __future__ import annotations

import re

from gitreg.errors import ManifestError

MANIFEST_FILE = "models.yaml"
MAX_MANIFEST_DEPTH = 64  # flow ([, {) plus block (indentation, "- -") nesting
MAX_MANIFEST_LINES = 100_000
MAX_MANIFEST_TOKENS = 200_000  # flow indicators ([ ] { } ,) and "key:" / "- " markers


def _too_much(source: str, what: str, line: int) -> None:
    hint = "flatten models.yaml; it needs only a few levels"
    raise ManifestError(source, f"{what} (the limit, checked before parsing)", hint, line=line)


_ORDINARY = re.compile(r"[^\s'\"#\[\]{},:|>?-]+")  # characters with no structural meaning
_IN_SINGLE = re.compile(r"''|'")  # '' is a quote inside a single-quoted scalar
_IN_DOUBLE = re.compile(r'\\.|"')


def prescan(text: str, source: str = MANIFEST_FILE) -> None:
    """Refuse a text the YAML scanner would be slow on, in one linear pass and before it runs:
    more than :data:`MAX_MANIFEST_DEPTH` levels of flow (``[``, ``{``) plus block (indentation,
    ``- -``) nesting, more than :data:`MAX_MANIFEST_LINES` lines or :data:`MAX_MANIFEST_TOKENS`
    structural tokens. Quoted scalars, comments and block scalars are skipped, so text inside
    them never counts; the count may only err on the side of refusing."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if len(lines) > MAX_MANIFEST_LINES:
        _too_much(source, f"has more than {MAX_MANIFEST_LINES} lines", MAX_MANIFEST_LINES + 1)
    indents: list[int] = []  # the block indentations open above this line
    flow = 0  # open [ and {
    quote = ""  # the quote character of a quoted scalar still open (they may span lines)
    block_scalar: int | None = None  # a `|` or `>` scalar's parent indentation
    tokens = 0
    for number, line in enumerate(lines, 1):
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        if block_scalar is not None:
            if not stripped or indent > block_scalar:
                continue  # the block scalar's text
            block_scalar = None
        start = True  # at the start of a value: a quote or a bracket here opens one
        i = 0
        if not quote and not flow and stripped and not stripped.startswith("#"):
            while indents and indents[-1] >= indent:
                indents.pop()
            indents.append(indent)
            dashes = 0
            i = indent
            while line.startswith("-", i) and (i + 1 == len(line) or line[i + 1] in " \t"):
                dashes += 1
                i += 2
            if len(indents) + dashes > MAX_MANIFEST_DEPTH:
                _too_much(source, f"nests deeper than {MAX_MANIFEST_DEPTH} levels", number)
            tokens += dashes
        n = len(line)
        while i < n:
            if quote:  # jump to the quote's end (or a backslash escape) on this line
                m = (_IN_SINGLE if quote == "'" else _IN_DOUBLE).search(line, i)
                if m is None:
                    break  # the quoted scalar goes on to the next line
                i = m.end()
                if m.group() == quote:
                    quote, start = "", False
                continue
            m = _ORDINARY.match(line, i)
            if m is not None:  # a run of plain-scalar text: no structure inside
                i, start = m.end(), False
                continue
            c = line[i]
            after = line[i + 1] if i + 1 < n else " "
            if c == "#" and (i == 0 or line[i - 1] in " \t"):
                break  # a comment
            if c in "'\"" and start:
                quote = c
            elif c in "[{" and (flow or start):
                flow += 1
                tokens += 1
                if len(indents) + flow > MAX_MANIFEST_DEPTH:
                    _too_much(source, f"nests deeper than {MAX_MANIFEST_DEPTH} levels", number)
            elif c in "]}" and flow:
                flow -= 1
                tokens += 1
                start = False
            elif (c == "," and flow) or (c in ":-?" and (after in " \t" or (flow and after in ",[]{}"))):
                tokens += 1
                start = True
            elif c in "|>" and start and not flow:
                block_scalar = indents[-1] if indents else 0
                break
            elif c not in " \t":
                start = False
            i += 1
        if tokens > MAX_MANIFEST_TOKENS:
            _too_much(source, f"has more than {MAX_MANIFEST_TOKENS} structural tokens", number)
