"""Charts as inline SVG: a metric over versions, with round ticks. Pure functions, no I/O.

Shared by `gitreg report --html` and any other page that draws the same chart. The caller says
what each point is (its label, value, time and roles); everything that becomes SVG text or an
attribute goes through :func:`xml_text`, so the SVG is well-formed XML whatever the names hold.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gitreg.metrics import best_value

# Geometry (SVG user units; the SVG scales to its container's width).
WIDTH, HEIGHT = 560, 236
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 58, 18, 18, 42
TIP_POINTS = 400  # above this many points only the marked points keep hover labels

# Roles a point can have, most prominent first, and the class that draws it.
ROLE_CLASS = {
    "production": "pt prod",
    "former production": "pt was",
    "canary": "pt cana",
    "staging": "pt stag",
}


# -- text ------------------------------------------------------------------------------------------
_NAMED = {"\n": "⏎", "\r": "\\r", "\t": "\\t"}


def _shown(c: str) -> str:
    o = ord(c)
    if c in _NAMED:
        return _NAMED[c]
    if o < 0x20 or 0x7F <= o <= 0x9F:
        return f"\\x{o:02x}"
    if (
        0xD800 <= o <= 0xDFFF  # lone surrogates: not encodable
        or o in (0xFFFE, 0xFFFF, 0x200E, 0x200F, 0x2028, 0x2029)
        or 0x202A <= o <= 0x202E  # bidi overrides
        or 0x2066 <= o <= 0x2069  # bidi isolates
    ):
        return f"\\u{o:04x}"
    return c


def plain(value: object) -> str:
    """``value`` with every control character (which XML forbids or a terminal acts on) shown
    as an escape like ``\\x1b``, a newline as ``⏎``; markup characters untouched."""
    s = str(value)
    return s if s.isprintable() else "".join(_shown(c) for c in s)


def xml_text(value: object) -> str:
    """``value`` as SVG/HTML text or attribute: :func:`plain`, then markup characters escaped."""
    return html.escape(plain(value), quote=True)


# -- numbers ---------------------------------------------------------------------------------------
def number(x: float | None) -> str:
    """A value for people: thousands separated, 4 significant digits, '—' for none or non-finite."""
    if x is None or not math.isfinite(x):
        return "—"
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    if abs(x) >= 1e12 or abs(x) < 1e-3:
        return f"{x:.3g}"
    if abs(x) >= 1e4:
        return f"{x:,.0f}"
    return f"{x:.4g}"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(1, count - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    stop = math.ceil(hi / step) * step
    n = round((stop - start) / step)
    return [start + i * step for i in range(n + 1)]


def tick_label(x: float, step: float) -> str:
    """A tick's text, with as many decimals as the step needs."""
    if step >= 1 and abs(x) < 1e15 and x == int(x):
        return f"{int(x):,}"
    decimals = max(0, min(8, -math.floor(math.log10(step)) + (1 if step * 10**8 % 10 else 0)))
    if abs(x) >= 1e6 or (x and abs(x) < 1e-4):
        return f"{x:.2g}"
    text = f"{x:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


# -- the line chart --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChartPoint:
    """One version on the chart: its label (the version), value, time and roles."""

    label: str
    value: float
    at: datetime
    roles: tuple[str, ...] = field(default_factory=tuple)  # "production", "staging", "best", …


def point_class(roles: Sequence[str]) -> str:
    return next((ROLE_CLASS[r] for r in ROLE_CLASS if r in roles), "pt")


def _tooltip(x: float, y: float, lines: Sequence[str]) -> str:
    # No text metrics without a browser: estimate (bold monospace head line, 11 px sans body).
    width = max(len(lines[0]) * 7.3, *(len(s) * 6.3 for s in lines[1:])) + 18
    height = 16 * len(lines) + 8
    tx = x + 10 if x + 10 + width <= WIDTH - 4 else x - 10 - width
    ty = min(max(y - height - 8, 4), HEIGHT - height - 4)
    head = ' class="tip-h"'
    texts = "".join(
        f'<text x="{tx + 8:.1f}" y="{ty + 17 + 16 * i:.1f}"{head if i == 0 else ""}>{xml_text(s)}</text>'
        for i, s in enumerate(lines)
    )
    return (
        f'<g class="tip"><rect x="{tx:.1f}" y="{ty:.1f}" width="{width:.1f}" height="{height}" rx="6"/>'
        f"{texts}</g>"
    )


def _when(d: datetime) -> str:
    return d.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def line_chart(points: Sequence[ChartPoint], *, metric: str, subject: str) -> str:
    """``metric`` of ``subject`` over ``points`` (oldest left) as one ``<svg>`` element, with
    grid lines, round y ticks, up to six date ticks, and a hover label per point."""
    n = len(points)
    if n == 0:
        return (
            f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'aria-label="{xml_text(metric)} of {xml_text(subject)}: no values"></svg>'
        )
    ticks = nice_ticks(min(p.value for p in points), max(p.value for p in points))
    y0, y1 = ticks[0], ticks[-1]
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    pw, ph = WIDTH - MARGIN_LEFT - MARGIN_RIGHT, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    base = MARGIN_TOP + ph

    def sx(i: int) -> float:
        return MARGIN_LEFT + pw / 2 if n == 1 else MARGIN_LEFT + pw * i / (n - 1)

    def sy(v: float) -> float:
        return MARGIN_TOP + ph * (1 - (v - y0) / (y1 - y0))

    out = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{xml_text(metric)} of {xml_text(subject)} over {n} versions" '
        'preserveAspectRatio="xMidYMid meet">'
    ]
    for t in ticks:
        y = sy(t)
        out.append(
            f'<line class="grid" x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        out.append(
            f'<text class="ytick" x="{MARGIN_LEFT - 8}" y="{y + 4:.1f}">'
            f"{xml_text(tick_label(t, step))}</text>"
        )
    out.append(f'<line class="axis" x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{base}" y2="{base}"/>')
    nx = min(n, 6)
    for i in sorted({round(k * (n - 1) / (nx - 1)) for k in range(nx)}) if nx > 1 else [0]:
        x = sx(i)
        anchor = "start" if n > 1 and i == 0 else "end" if n > 1 and i == n - 1 else "middle"
        out.append(f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 5}"/>')
        out.append(
            f'<text class="xtick" x="{x:.1f}" y="{base + 19}" text-anchor="{anchor}">'
            f"{xml_text(points[i].at.astimezone(UTC).strftime('%b %d'))}</text>"
        )
    coords = [(sx(i), sy(p.value)) for i, p in enumerate(points)]
    if n > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        out.append(
            f'<polygon class="area" points="{coords[0][0]:.1f},{base} {path} {coords[-1][0]:.1f},{base}"/>'
        )
        out.append(f'<polyline class="line" points="{path}"/>')
    plain: list[str] = []
    special: list[str] = []
    for p, (x, y) in zip(points, coords, strict=True):
        cls = point_class(p.roles)
        r = 6.5 if "production" in p.roles else 5 if cls != "pt" else 3.5 if n <= 60 else 2.5
        if n > TIP_POINTS and cls == "pt":
            continue  # thousands of versions: the line carries them; hover stays for the marked ones
        lines = [p.label, f"{metric} = {number(p.value)}", _when(p.at)]
        if p.roles:
            lines.append(" · ".join(p.roles))
        g = (
            f'<g class="{cls}"><circle class="hit" cx="{x:.1f}" cy="{y:.1f}" r="10"/>'
            f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="{r}"/>'
            f"<title>{xml_text(' — '.join(lines))}</title>"
            f"{_tooltip(x, y, lines)}</g>"
        )
        (plain if cls == "pt" else special).append(g)
        if "production" in p.roles:
            lx = min(max(x, MARGIN_LEFT + 40), WIDTH - MARGIN_RIGHT - 40)
            special.append(f'<text class="plabel" x="{lx:.1f}" y="{max(y - 12, 11):.1f}">production</text>')
    out.extend(plain)
    out.extend(special)  # drawn last: highlighted points sit on top of the others
    out.append("</svg>")
    return "".join(out)


def best_index(values: Sequence[float], direction: str | None) -> int | None:
    """The index of the best value ("higher" or "lower" is better), or None without a direction."""
    if not values or direction not in ("higher", "lower"):
        return None
    return list(values).index(best_value(values, direction))
