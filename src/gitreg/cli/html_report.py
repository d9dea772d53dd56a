"""`gitreg report --html`: the report as one self-contained HTML file.

Inline CSS and inline SVG only: no script, no web font, no external URL, so the file can be
mailed, attached to a pull request or opened offline. Every string that comes from the
registry (model and metric names, versions, authors, commit subjects) is untrusted and goes
through :func:`_e`; numbers are formatted here, never interpolated raw.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from gitreg import __version__
from gitreg.report import MetricSeries, ProductionEntry, Report

HISTORY_ROWS = 200  # the newest stage changes shown; `gitreg history` has all of them
TIP_POINTS = 400  # above this many points a chart keeps hover labels for highlighted points only

# Chart geometry (SVG user units; the SVG scales to its card's width).
W, H = 560, 236
ML, MR, MT, MB = 58, 18, 18, 42

STAGE_CLASS = {"production": "prod", "staging": "stag", "canary": "cana", "archived": "arch"}
PRODUCTION_WARNING = {
    "failed": "its validation failed",
    "registered": "not validated: no validation record",
    "missing": "models.yaml names a version that is not a tag here",
}
STATUS_CLASS = {"validated": "ok", "registered": "warn", "failed": "bad", "missing": "bad"}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _when(d: datetime | None, *, time: bool = True) -> str:
    if d is None:
        return "—"
    d = d.astimezone(UTC)
    return d.strftime("%Y-%m-%d %H:%M") if time else d.strftime("%Y-%m-%d")


def _num(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    if abs(x) >= 1e12 or abs(x) < 1e-3:
        return f"{x:.3g}"
    if abs(x) >= 1e4:
        return f"{x:,.0f}"
    return f"{x:.4g}"


def _pct(part: int, whole: int) -> str:
    if not whole:
        return "—"
    if 0 < part < whole / 100:
        return "<1%"
    return f"{100 * part / whole:.0f}%"


def _plural(n: int, word: str) -> str:
    return f"{_num(n)} {word}{'' if n == 1 else 's'}"


def _badge(text: str, cls: str) -> str:
    return f'<span class="badge {cls}">{_e(text)}</span>'


def _status_badge(status: str) -> str:
    return _badge(status, STATUS_CLASS.get(status, "muted"))


def _stage_badge(stage: str) -> str:
    return _badge(stage, STAGE_CLASS.get(stage, "muted"))


# -- scales ----------------------------------------------------------------------------------------
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


def _tick_label(x: float, step: float) -> str:
    if step >= 1 and abs(x) < 1e15 and x == int(x):
        return f"{int(x):,}"
    decimals = max(0, min(8, -math.floor(math.log10(step)) + (1 if step * 10**8 % 10 else 0)))
    if abs(x) >= 1e6 or (x and abs(x) < 1e-4):
        return f"{x:.2g}"
    text = f"{x:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


# -- charts ----------------------------------------------------------------------------------------
@dataclass
class Marks:
    """Which versions a chart highlights."""

    production: str | None
    former_production: set[str]
    staging: str | None
    canary: str | None


def _marks(report: Report, model: str) -> Marks:
    stages = next((m.stages for m in report.models if m.model == model), {})
    former = {
        c.version
        for c in report.history
        if c.model == model
        and c.stage == "production"
        and c.version
        and c.version != stages.get("production")
    }
    return Marks(
        production=stages.get("production"),
        former_production=former,
        staging=stages.get("staging"),
        canary=stages.get("canary"),
    )


def _tooltip(x: float, y: float, lines: Sequence[str]) -> str:
    # No text metrics without a browser: estimate (bold monospace head line, 11 px sans body).
    width = max(len(lines[0]) * 7.3, *(len(s) * 6.3 for s in lines[1:])) + 18
    height = 16 * len(lines) + 8
    tx = x + 10 if x + 10 + width <= W - 4 else x - 10 - width
    ty = min(max(y - height - 8, 4), H - height - 4)
    texts = "".join(
        f'<text x="{tx + 8:.1f}" y="{ty + 17 + 16 * i:.1f}"{" class=tip-h" if i == 0 else ""}>{_e(s)}</text>'
        for i, s in enumerate(lines)
    )
    return (
        f'<g class="tip"><rect x="{tx:.1f}" y="{ty:.1f}" width="{width:.1f}" height="{height}" rx="6"/>'
        f"{texts}</g>"
    )


def line_chart(series: MetricSeries, marks: Marks) -> str:
    """One metric over the model's versions, oldest left: an inline SVG with axes and ticks."""
    pts = series.points
    values = [p.value for p in pts]
    ticks = nice_ticks(min(values), max(values))
    y0, y1 = ticks[0], ticks[-1]
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    pw, ph = W - ML - MR, H - MT - MB
    n = len(pts)

    def sx(i: int) -> float:
        return ML + pw / 2 if n == 1 else ML + pw * i / (n - 1)

    def sy(v: float) -> float:
        return MT + ph * (1 - (v - y0) / (y1 - y0))

    out = [
        f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{_e(series.metric)} of {_e(series.model)}'
        f' over {n} versions" preserveAspectRatio="xMidYMid meet">'
    ]
    for t in ticks:
        y = sy(t)
        out.append(f'<line class="grid" x1="{ML}" x2="{W - MR}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="ytick" x="{ML - 8}" y="{y + 4:.1f}">{_e(_tick_label(t, step))}</text>')
    out.append(f'<line class="axis" x1="{ML}" x2="{W - MR}" y1="{MT + ph}" y2="{MT + ph}"/>')
    nx = min(n, 6)
    idx = sorted({round(k * (n - 1) / (nx - 1)) for k in range(nx)}) if nx > 1 else [0]
    for i in idx:
        x = sx(i)
        label = pts[i].registered_at.astimezone(UTC).strftime("%b %d")
        anchor = "start" if n > 1 and i == 0 else "end" if n > 1 and i == n - 1 else "middle"
        out.append(f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{MT + ph}" y2="{MT + ph + 5}"/>')
        out.append(
            f'<text class="xtick" x="{x:.1f}" y="{MT + ph + 19}" text-anchor="{anchor}">{_e(label)}</text>'
        )
    coords = [(sx(i), sy(p.value)) for i, p in enumerate(pts)]
    if n > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        base = MT + ph
        out.append(
            f'<polygon class="area" points="{coords[0][0]:.1f},{base} {path} {coords[-1][0]:.1f},{base}"/>'
        )
        out.append(f'<polyline class="line" points="{path}"/>')
    best = _best(series)
    plain: list[str] = []
    special: list[str] = []
    for i, (p, (x, y)) in enumerate(zip(pts, coords, strict=True)):
        roles = []
        if p.version == marks.production:
            roles.append("production")
        elif p.version in marks.former_production:
            roles.append("former production")
        if p.version == marks.staging:
            roles.append("staging")
        if p.version == marks.canary:
            roles.append("canary")
        if best is not None and i == best:
            roles.append("best")
        cls = (
            "pt prod"
            if "production" in roles
            else "pt was"
            if "former production" in roles
            else "pt cana"
            if "canary" in roles
            else "pt stag"
            if "staging" in roles
            else "pt"
        )
        r = 6.5 if "production" in roles else 5 if cls != "pt" else 3.5 if n <= 60 else 2.5
        if n > TIP_POINTS and cls == "pt":
            continue  # thousands of versions: the line carries them; hover stays for the marked ones
        lines = [p.version, f"{series.metric} = {_num(p.value)}", _when(p.registered_at)]
        if roles:
            lines.append(" · ".join(roles))
        title = " — ".join(lines)
        g = (
            f'<g class="{cls}"><circle class="hit" cx="{x:.1f}" cy="{y:.1f}" r="10"/>'
            f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="{r}"/><title>{_e(title)}</title>'
            f"{_tooltip(x, y, lines)}</g>"
        )
        (plain if cls == "pt" else special).append(g)
        if "production" in roles:
            lx = min(max(x, ML + 40), W - MR - 40)
            special.append(f'<text class="plabel" x="{lx:.1f}" y="{max(y - 12, 11):.1f}">production</text>')
    out.extend(plain)
    out.extend(special)  # drawn last: highlighted points sit on top of the others
    out.append("</svg>")
    return "".join(out)


def _best(series: MetricSeries) -> int | None:
    if not series.points or series.direction is None:
        return None
    values = [p.value for p in series.points]
    target = max(values) if series.direction == "higher" else min(values)
    return values.index(target)


def _legend(series: Iterable[MetricSeries], marks: Marks) -> str:
    shown = {p.version for s in series for p in s.points}
    items = []
    if marks.production in shown:
        items.append('<span class="key"><i class="k prod"></i>production</span>')
    if marks.former_production & shown:
        items.append('<span class="key"><i class="k was"></i>formerly production</span>')
    if marks.staging in shown:
        items.append('<span class="key"><i class="k stag"></i>staging</span>')
    if marks.canary in shown:
        items.append('<span class="key"><i class="k cana"></i>canary</span>')
    items.append('<span class="key"><i class="k pt"></i>other versions</span>')
    return f'<div class="legend">{"".join(items)}</div>'


def _chart_card(series: MetricSeries, marks: Marks) -> str:
    pts = series.points
    latest = pts[-1]
    arrow = {"higher": "higher is better ↑", "lower": "lower is better ↓"}.get(series.direction or "", "")
    best_i = _best(series)
    facts = [f"latest <b>{_e(_num(latest.value))}</b>"]
    if best_i is not None:
        facts.append(f"best <b>{_e(_num(pts[best_i].value))}</b> <code>{_e(pts[best_i].version)}</code>")
    else:
        lo, hi = min(p.value for p in pts), max(p.value for p in pts)
        facts.append(f"range <b>{_e(_num(lo))}</b> – <b>{_e(_num(hi))}</b>")
    facts.append(_e(_plural(len(pts), "version")))
    return (
        '<figure class="card chart">'
        f'<figcaption><div class="ctitle"><h4>{_e(series.metric)}</h4>'
        f'<span class="dir">{_e(arrow)}</span></div>'
        f'<div class="facts">{" · ".join(facts)}</div></figcaption>'
        f"{line_chart(series, marks)}</figure>"
    )


# -- sections --------------------------------------------------------------------------------------
def _kpis(report: Report) -> str:
    t = report.totals
    validated = report.by_status.get("validated", 0)
    failed = report.by_status.get("failed", 0)
    tiles = [
        ("versions", _num(t.versions), _plural(len(report.by_algorithm), "algorithm")),
        ("models", _num(t.models), f"{len(report.production)} in production"),
        ("validated", _num(validated), f"{_pct(validated, t.versions)} of versions"),
        ("failed validation", _num(failed), f"{_pct(failed, t.versions)} of versions"),
        ("stage changes", _num(len(report.history)), "from git log -- models.yaml"),
    ]
    cells = "".join(
        f'<div class="kpi{" alert" if label == "failed validation" and failed else ""}">'
        f'<div class="kv">{_e(value)}</div><div class="kl">{_e(label)}</div>'
        f'<div class="ks">{_e(sub)}</div></div>'
        for label, value, sub in tiles
    )
    return f'<section class="kpis">{cells}</section>'


Lookup = dict[tuple[str, str], MetricSeries]


def _delta(entry: ProductionEntry, metric: str, value: float, lookup: Lookup) -> str:
    """The change from the production version before this one, coloured by the metric's direction."""
    series = lookup.get((entry.model, metric))
    if entry.previous is None or series is None:
        return ""
    before = next((p.value for p in series.points if p.version == entry.previous), None)
    if before is None or before == value:
        return ""
    diff = value - before
    good = None if series.direction is None else (diff > 0) == (series.direction == "higher")
    cls = "flat" if good is None else "up" if good else "down"
    sign = "+" if diff > 0 else "−"
    return f'<span class="delta {cls}" title="vs {_e(entry.previous)}">{sign}{_e(_num(abs(diff)))}</span>'


def _production_cards(report: Report) -> str:
    lookup: Lookup = {(s.model, s.metric): s for s in report.metrics}
    prod = {p.model: p for p in report.production}
    cards = []
    for m in report.models:
        entry = prod.get(m.model)
        others = []
        for stage in ("staging", "canary"):
            v = m.stages.get(stage)
            if v:
                share = (
                    f" ({_num(m.canary_traffic)}%)"
                    if stage == "canary" and m.canary_traffic is not None
                    else ""
                )
                others.append(f"{_stage_badge(stage)} <code>{_e(v)}</code>{_e(share)}")
        foot = (
            f'<div class="cfoot">{"".join(f"<div>{o}</div>" for o in others)}'
            f'<div class="muted">{_e(_plural(m.versions, "version"))} · {_e(m.archived)} archived'
            + (f" · latest <code>{_e(m.latest)}</code>" if m.latest else "")
            + "</div></div>"
        )
        if entry is None:
            cards.append(
                f'<article class="card pcard none"><header><h3>{_e(m.model)}</h3></header>'
                f'<div class="pver muted">no production version</div>'
                f'<p class="muted small">promote one with <code>gitreg promote VERSION production</code></p>'
                f"{foot}</article>"
            )
            continue
        rows = "".join(
            f"<tr><th>{_e(k)}</th><td>{_e(_num(v))}{_delta(entry, k, v, lookup)}</td></tr>"
            for k, v in list(entry.metrics.items())[:8]
        )
        more = len(entry.metrics) - 8
        since = f"in production since {_e(_when(entry.since))}" if entry.since else "production"
        prev = f" · before: <code>{_e(entry.previous)}</code>" if entry.previous else ""
        cards.append(
            f'<article class="card pcard{"" if entry.status == "validated" else " alert"}">'
            f"<header><h3>{_e(m.model)}</h3>{_status_badge(entry.status)}"
            + (_badge(entry.algorithm, "algo") if entry.algorithm else "")
            + "</header>"
            f'<div class="pver"><span class="dotp"></span><code>{_e(entry.version)}</code></div>'
            f'<div class="muted small">registered {_e(_when(entry.registered_at))} · {since}{prev}</div>'
            + (
                f'<div class="warnline">⚠ {_e(PRODUCTION_WARNING.get(entry.status, entry.status))}</div>'
                if entry.status != "validated"
                else ""
            )
            + (f'<table class="kvt">{rows}</table>' if rows else '<p class="muted small">no metrics</p>')
            + (f'<div class="muted small">+{more} more metrics</div>' if more > 0 else "")
            + f"{foot}</article>"
        )
    if not cards:
        return '<p class="muted">No models yet.</p>'
    return f'<div class="grid pcards">{"".join(cards)}</div>'


def _count_table(title: str, counts: dict[str, int], total: int, badge: str | None) -> str:
    if not counts:
        body = '<tr><td class="muted" colspan="3">none</td></tr>'
    else:
        top = max(counts.values()) or 1
        rows = []
        for key, n in counts.items():
            label = (
                _status_badge(key)
                if badge == "status"
                else _stage_badge(key)
                if badge == "stage"
                else f"<span>{_e(key)}</span>"
            )
            cls = (
                STATUS_CLASS.get(key, "") if badge == "status" else STAGE_CLASS.get(key, "") if badge else ""
            )
            rows.append(
                f"<tr><td>{label}</td><td class='bar'><span class='fill {cls}' "
                f"style='width:{100 * n / top:.1f}%'></span></td>"
                f"<td class='num'>{_e(_num(n))}<span class='muted'> {_e(_pct(n, total))}</span></td></tr>"
            )
        body = "".join(rows)
    return f'<div class="card"><h3>{_e(title)}</h3><table class="counts">{body}</table></div>'


def _history_table(report: Report) -> str:
    changes = report.history
    if not changes:
        return '<p class="muted">No stage changes yet.</p>'
    rows = []
    for c in changes[:HISTORY_ROWS]:
        to = f"<code>{_e(c.version)}</code>" if c.version else '<span class="muted">cleared</span>'
        if c.traffic is not None:
            to += f' <span class="muted">{_e(_num(c.traffic))}%</span>'
        before = f"<code>{_e(c.previous)}</code>" if c.previous else '<span class="muted">—</span>'
        pr = (
            f"#{_e(c.pull_request)}"
            if c.pull_request
            else (f"<code>{_e(c.merge[:10])}</code>" if c.merge else "")
        )
        rows.append(
            f"<tr><td class='nowrap'>{_e(_when(c.date))}</td><td>{_e(c.model)}</td>"
            f"<td>{_stage_badge(c.stage)}</td>"
            f"<td class='nowrap'>{before} <span class='arrow'>→</span> {to}</td>"
            f"<td>{_e(c.author.split(' <')[0])}</td>"
            f"<td><code title='{_e(c.subject)}'>{_e(c.commit[:10])}</code></td>"
            f"<td>{pr}</td></tr>"
        )
    more = len(changes) - HISTORY_ROWS
    tail = (
        f'<p class="muted small">… and {more} older changes: <code>gitreg history</code> lists them all.</p>'
        if more > 0
        else ""
    )
    return (
        '<div class="card flush"><table class="hist"><thead><tr><th>when (UTC)</th><th>model</th>'
        "<th>stage</th><th>change</th><th>who</th><th>commit</th><th>PR</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>{tail}"
    )


def _metric_sections(report: Report) -> str:
    if not report.metrics:
        return '<p class="muted">No metrics recorded.</p>'
    out = []
    for model in [m.model for m in report.models]:
        own = [s for s in report.metrics if s.model == model]
        if not own:
            continue
        marks = _marks(report, model)
        cards = "".join(_chart_card(s, marks) for s in own)
        out.append(
            f'<div class="mhead"><h3>{_e(model)}</h3>{_legend(own, marks)}</div>'
            f'<div class="grid charts">{cards}</div>'
        )
    return "".join(out)


# -- the page ------------------------------------------------------------------------------------------
CSS = """
:root{--bg:#f5f6f8;--card:#fff;--ink:#16181d;--muted:#6b7280;--line:#e6e8ec;--grid:#eef0f3;
--accent:#4f46e5;--accent-soft:rgba(79,70,229,.09);--prod:#059669;--prod-soft:#d1fae5;--stag:#d97706;
--stag-soft:#fef3c7;--cana:#7c3aed;--cana-soft:#ede9fe;--bad:#dc2626;--bad-soft:#fee2e2;--arch:#6b7280;
--arch-soft:#f0f1f3;--tip:#111827;--tip-ink:#f9fafb;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--bg:#0f1115;--card:#171a21;--ink:#e6e8ee;--muted:#9aa3b2;
--line:#262b35;--grid:#20242d;--accent:#8b8cf8;--accent-soft:rgba(139,140,248,.12);--prod:#34d399;
--prod-soft:rgba(52,211,153,.15);--stag:#fbbf24;--stag-soft:rgba(251,191,36,.15);--cana:#a78bfa;
--cana-soft:rgba(167,139,250,.16);--bad:#f87171;--bad-soft:rgba(248,113,113,.15);--arch:#9aa3b2;
--arch-soft:rgba(154,163,178,.14);--tip:#e6e8ee;--tip-ink:#111827}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.5 system-ui,-apple-system,"Segoe UI",
Roboto,"Helvetica Neue",Arial,sans-serif;-webkit-font-smoothing:antialiased}
main{max-width:1200px;margin:0 auto;padding:32px 28px 48px}
code{font:12.5px/1.3 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
h1,h2,h3,h4{margin:0;font-weight:650;letter-spacing:-.01em}
h1{font-size:28px}h2{font-size:18px;margin:36px 0 14px}h3{font-size:15px}h4{font-size:14px}
.eyebrow{font-size:12px;text-transform:uppercase;letter-spacing:.08em;color:var(--accent);font-weight:650}
.sub{color:var(--muted);margin-top:4px}
.muted{color:var(--muted)}.small{font-size:12.5px}.nowrap{white-space:nowrap}
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:16px 18px;
box-shadow:0 1px 2px rgba(16,24,40,.04)}
.card.flush{padding:0;overflow:hidden}
.grid{display:grid;gap:16px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:14px;margin-top:24px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:14px 16px}
.kpi .kv{font-size:28px;font-weight:700;letter-spacing:-.02em;font-variant-numeric:tabular-nums}
.kpi .kl{font-weight:600}.kpi .ks{color:var(--muted);font-size:12.5px}
.kpi.alert .kv{color:var(--bad)}
.pcards{grid-template-columns:repeat(auto-fill,minmax(340px,1fr))}
.pcard header{display:flex;align-items:center;gap:8px;flex-wrap:wrap}
.pcard header h3{margin-right:auto;font-size:16px}
.pcard{border-top:3px solid var(--prod)}.pcard.none{border-top-color:var(--line)}
.pver{display:flex;align-items:center;gap:8px;margin:10px 0 2px}
.pver code{font-size:17px;font-weight:600}
.dotp{width:10px;height:10px;border-radius:50%;background:var(--prod);box-shadow:0 0 0 4px var(--prod-soft)}
.kvt{width:100%;border-collapse:collapse;margin-top:10px}
.kvt th{text-align:left;font-weight:500;color:var(--muted);padding:3px 0;font-size:13px}
.kvt td{text-align:right;font-variant-numeric:tabular-nums;padding:3px 0}
.kvt tr+tr th,.kvt tr+tr td{border-top:1px dashed var(--line)}
.delta{font-size:11.5px;margin-left:6px;padding:1px 5px;border-radius:5px}
.delta.up{color:var(--prod);background:var(--prod-soft)}.delta.down{color:var(--bad);background:var(--bad-soft)}
.delta.flat{color:var(--muted);background:var(--arch-soft)}
.cfoot code,.pcard .small code{white-space:nowrap}
.warnline{margin-top:8px;padding:5px 9px;border-radius:7px;background:var(--bad-soft);color:var(--bad);
font-size:12.5px;font-weight:600}
.pcard.alert{border-top-color:var(--bad)}
.cfoot{margin-top:12px;padding-top:10px;border-top:1px solid var(--line);display:grid;gap:4px;font-size:13px}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:11.5px;font-weight:600;
line-height:18px;white-space:nowrap;background:var(--arch-soft);color:var(--arch)}
.badge.ok,.badge.prod{background:var(--prod-soft);color:var(--prod)}
.badge.warn,.badge.stag{background:var(--stag-soft);color:var(--stag)}
.badge.bad{background:var(--bad-soft);color:var(--bad)}
.badge.cana{background:var(--cana-soft);color:var(--cana)}
.badge.algo{background:var(--accent-soft);color:var(--accent)}
.glance{grid-template-columns:repeat(auto-fit,minmax(300px,1fr))}
.glance h3{margin-bottom:8px}
.counts{width:100%;border-collapse:collapse}
.counts td{padding:5px 0;vertical-align:middle}
.counts td:first-child{width:34%;padding-right:10px;white-space:nowrap;overflow:hidden;
text-overflow:ellipsis;max-width:140px}
.counts .bar{width:44%}
.counts .bar{padding-right:4px}
.counts .fill{display:block;height:8px;border-radius:4px;background:var(--accent)}
.fill.ok,.fill.prod{background:var(--prod)}.fill.warn,.fill.stag{background:var(--stag)}
.fill.bad{background:var(--bad)}.fill.cana{background:var(--cana)}.fill.arch{background:var(--arch)}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap;padding-left:10px}
.mhead{display:flex;align-items:baseline;gap:16px;flex-wrap:wrap;margin:22px 0 10px}
.mhead h3{font-size:16px}
.legend{display:flex;gap:14px;flex-wrap:wrap;color:var(--muted);font-size:12.5px}
.key{display:inline-flex;align-items:center;gap:6px}
.k{display:inline-block;width:10px;height:10px;border-radius:50%;border:2px solid var(--accent);
background:var(--card)}
.k.prod{background:var(--prod);border-color:var(--prod);width:12px;height:12px}
.k.was{border-color:var(--prod)}.k.stag{background:var(--stag);border-color:var(--stag)}
.k.cana{background:var(--cana);border-color:var(--cana)}
.charts{grid-template-columns:repeat(auto-fill,minmax(460px,1fr))}
figure{margin:0}
.chart figcaption{margin-bottom:6px}
.ctitle{display:flex;align-items:baseline;gap:10px}
.ctitle h4{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13.5px;
word-break:break-all}
.dir{color:var(--muted);font-size:12px;white-space:nowrap}
.facts{color:var(--muted);font-size:12.5px}.facts b{color:var(--ink);font-variant-numeric:tabular-nums}
.facts code{font-size:11.5px}
svg{display:block;width:100%;height:auto;overflow:visible}
svg text{font:11px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:var(--muted)}
svg .grid{stroke:var(--grid);stroke-width:1}
svg .axis{stroke:var(--line);stroke-width:1.2}svg .tick{stroke:var(--line)}
svg .ytick{text-anchor:end;font-variant-numeric:tabular-nums}
svg .line{fill:none;stroke:var(--accent);stroke-width:2;stroke-linejoin:round;stroke-linecap:round}
svg .area{fill:var(--accent-soft);stroke:none}
svg .dot{fill:var(--card);stroke:var(--accent);stroke-width:1.8;transition:r .12s}
svg .prod .dot{fill:var(--prod);stroke:var(--card);stroke-width:2.5}
svg .was .dot{fill:var(--card);stroke:var(--prod);stroke-width:2.4}
svg .stag .dot{fill:var(--stag);stroke:var(--card);stroke-width:2}
svg .cana .dot{fill:var(--cana);stroke:var(--card);stroke-width:2}
svg .hit{fill:transparent;stroke:none}
svg .pt{cursor:default}
svg .pt:hover .dot{r:7}
svg .plabel{fill:var(--prod);font-weight:650;text-anchor:middle;font-size:10.5px}
svg .tip{display:none;pointer-events:none}
svg .pt:hover .tip{display:inline}
svg .tip rect{fill:var(--tip);opacity:.94}
svg .tip text{fill:var(--tip-ink);font-size:11px}
svg .tip .tip-h{font-weight:700;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.hist{width:100%;border-collapse:collapse;font-size:13px}
.hist th{text-align:left;font-weight:600;color:var(--muted);font-size:12px;text-transform:uppercase;
letter-spacing:.04em;padding:10px 14px;border-bottom:1px solid var(--line);background:var(--bg)}
.hist td{padding:8px 14px;border-bottom:1px solid var(--line);vertical-align:middle}
.hist tr:last-child td{border-bottom:0}
.hist tbody tr:hover td{background:var(--accent-soft)}
.arrow{color:var(--muted);padding:0 2px}
footer{margin-top:40px;color:var(--muted);font-size:12.5px;border-top:1px solid var(--line);padding-top:14px}
@media print{body{background:#fff}.card,.kpi{box-shadow:none;break-inside:avoid}}
"""


def render_html(report: Report) -> str:
    """The whole report as one HTML document (inline CSS and SVG; no script, no external URL)."""
    scope = f"model {report.model}" if report.model else "all models"
    generated = _when(report.generated_at)
    title = f"gitreg report — {report.registry}" + (f" — {report.model}" if report.model else "")
    glance = "".join(
        [
            _count_table("by status", report.by_status, report.totals.versions, "status"),
            _count_table("by stage", report.by_stage, report.totals.versions, "stage"),
            _count_table("by algorithm", report.by_algorithm, report.totals.versions, None),
        ]
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="generator" content="gitreg ' + _e(__version__) + '">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>"
        f'<header><div class="eyebrow">gitreg · model registry report</div>'
        f"<h1>{_e(report.registry)}</h1>"
        f'<div class="sub">{_e(scope)} · generated {_e(generated)} UTC · '
        f"{_e(_plural(report.totals.versions, 'version'))} of "
        f"{_e(_plural(report.totals.models, 'model'))}</div></header>"
        f"{_kpis(report)}"
        f"<h2>In production</h2>{_production_cards(report)}"
        f'<h2>At a glance</h2><div class="grid glance">{glance}</div>'
        f"<h2>Metrics over versions</h2>{_metric_sections(report)}"
        f"<h2>Promotion history</h2>{_history_table(report)}"
        f"<footer>Generated by gitreg {_e(__version__)} from tags, notes and "
        f"<code>git log -- models.yaml</code> at {_e(generated)} UTC. "
        "Hover a point for its version; the JSON form is <code>gitreg report --json</code>.</footer>"
        "</main></body></html>\n"
    )
