"""`gitreg report --html`: the report as one self-contained HTML file.

The page is ``templates/report/report.html.j2`` rendered by Jinja2 with autoescape on: every
value from the registry (model and metric names, versions, authors, commit subjects) is escaped
by the template engine, and a ``finalize`` hook shows its control characters (ESC, C1, bidi
overrides, newlines) as escapes first. The charts are inline SVG from :mod:`gitreg.charts`,
which escapes what it draws; they are the only Markup the template receives. Inline CSS and SVG
only: no script, no web font, no external URL, so the file can be mailed, attached to a pull
request or opened offline.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gitreg import __version__, charts
from gitreg.cli.output import visible

if TYPE_CHECKING:
    import jinja2

    from gitreg.report import MetricSeries, ModelSummary, ProductionEntry, Report

HISTORY_ROWS = 200  # the newest stage changes shown; `gitreg history` has all of them

STAGE_CLASS = {"production": "prod", "staging": "stag", "canary": "cana", "archived": "arch"}
PRODUCTION_WARNING = {
    "failed": "its validation failed",
    "registered": "not validated: no validation record",
    "missing": "models.yaml names a version that is not a tag here",
}
STATUS_CLASS = {"validated": "ok", "registered": "warn", "failed": "bad", "missing": "bad"}

nice_ticks = charts.nice_ticks  # the chart's scale lives in gitreg.charts


# -- filters -----------------------------------------------------------------------------------------
def when(d: datetime | None) -> str:
    return "—" if d is None else d.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def pct(part: int, whole: int) -> str:
    if not whole:
        return "—"
    if 0 < part < whole / 100:
        return "<1%"
    return f"{100 * part / whole:.0f}%"


def plural(n: int, word: str) -> str:
    return f"{charts.number(n)} {word}{'' if n == 1 else 's'}"


def _finalize(value: Any) -> Any:
    """Every ``{{ value }}``: registry text with its control characters shown (then escaped by
    autoescape); the charts' Markup untouched."""
    from markupsafe import Markup

    if isinstance(value, Markup) or not isinstance(value, str):
        return "" if value is None else value
    return visible(value)


@functools.cache
def environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gitreg", "templates/report"),
        autoescape=True,
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters.update(
        num=charts.number, when=when, plural=plural, person=lambda a: a.split(" <", maxsplit=1)[0]
    )
    return env


# -- the page's data -----------------------------------------------------------------------------------
def _roles(report: Report, model: str) -> tuple[dict[str, str], set[str]]:
    """The model's stages (stage -> version) and the versions that were production before."""
    stages = next((m.stages for m in report.models if m.model == model), {})
    former = {
        c.version
        for c in report.history
        if c.model == model
        and c.stage == "production"
        and c.version
        and c.version != stages.get("production")
    }
    return stages, former


def _chart(report: Report, series: MetricSeries) -> dict[str, Any]:
    from markupsafe import Markup

    stages, former = _roles(report, series.model)
    values = [p.value for p in series.points]
    best = charts.best_index(values, series.direction)
    points = []
    for i, p in enumerate(series.points):
        roles = []
        if p.version == stages.get("production"):
            roles.append("production")
        elif p.version in former:
            roles.append("former production")
        if p.version == stages.get("staging"):
            roles.append("staging")
        if p.version == stages.get("canary"):
            roles.append("canary")
        if best is not None and i == best:
            roles.append("best")
        points.append(charts.ChartPoint(p.version, p.value, p.registered_at, tuple(roles)))
    svg = charts.line_chart(points, metric=series.metric, subject=series.model)
    return {
        "metric": series.metric,
        "arrow": {"higher": "higher is better ↑", "lower": "lower is better ↓"}.get(
            series.direction or "", ""
        ),
        "latest": values[-1],
        "best": None if best is None else {"value": values[best], "version": series.points[best].version},
        "low": min(values),
        "high": max(values),
        "points": len(values),
        "svg": Markup(svg),  # built by gitreg.charts, which escapes every value it draws
    }


def _legend(report: Report, model: str, own: list[MetricSeries]) -> list[dict[str, str]]:
    stages, former = _roles(report, model)
    shown = {p.version for s in own for p in s.points}
    items = []
    if stages.get("production") in shown:
        items.append({"cls": "prod", "label": "production"})
    if former & shown:
        items.append({"cls": "was", "label": "formerly production"})
    if stages.get("staging") in shown:
        items.append({"cls": "stag", "label": "staging"})
    if stages.get("canary") in shown:
        items.append({"cls": "cana", "label": "canary"})
    items.append({"cls": "pt", "label": "other versions"})
    return items


def _sections(report: Report) -> list[dict[str, Any]]:
    out = []
    for model in [m.model for m in report.models]:
        own = [s for s in report.metrics if s.model == model and s.points]
        if own:
            out.append(
                {
                    "model": model,
                    "legend": _legend(report, model, own),
                    "charts": [_chart(report, s) for s in own],
                }
            )
    return out


def _delta(entry: ProductionEntry, metric: str, value: float, report: Report) -> dict[str, Any] | None:
    """The change from the production version before this one, coloured by the metric's direction."""
    series = next((s for s in report.metrics if s.model == entry.model and s.metric == metric), None)
    if entry.previous is None or series is None:
        return None
    before = next((p.value for p in series.points if p.version == entry.previous), None)
    if before is None or before == value:
        return None
    diff = value - before
    good = None if series.direction is None else (diff > 0) == (series.direction == "higher")
    return {
        "cls": "flat" if good is None else "up" if good else "down",
        "sign": "+" if diff > 0 else "−",
        "size": abs(diff),
    }


def _card(report: Report, m: ModelSummary, entry: ProductionEntry | None) -> dict[str, Any]:
    others = []
    for stage in ("staging", "canary"):
        v = m.stages.get(stage)
        if v:
            share = (
                f" ({charts.number(m.canary_traffic)}%)"
                if stage == "canary" and m.canary_traffic is not None
                else ""
            )
            others.append({"stage": stage, "version": v, "share": share})
    card: dict[str, Any] = {
        "model": m.model,
        "entry": entry,
        "others": others,
        "versions": m.versions,
        "archived": m.archived,
        "latest": m.latest,
        "rows": [],
        "more": 0,
        "warning": "",
    }
    if entry is not None:
        card["rows"] = [
            {"metric": k, "value": v, "delta": _delta(entry, k, v, report)}
            for k, v in list(entry.metrics.items())[:8]
        ]
        card["more"] = len(entry.metrics) - 8
        if entry.status != "validated":
            card["warning"] = PRODUCTION_WARNING.get(entry.status, entry.status)
    return card


def _counts(title: str, counts: dict[str, int], total: int, badge: str | None) -> dict[str, Any]:
    top = max(counts.values(), default=0) or 1
    rows = []
    for key, n in counts.items():
        cls = STATUS_CLASS.get(key, "") if badge == "status" else STAGE_CLASS.get(key, "") if badge else ""
        rows.append({"key": key, "n": n, "cls": cls, "width": f"{100 * n / top:.1f}", "pct": pct(n, total)})
    return {"title": title, "rows": rows, "badge": badge}


def _kpis(report: Report) -> list[dict[str, Any]]:
    t = report.totals
    validated = report.by_status.get("validated", 0)
    failed = report.by_status.get("failed", 0)
    tiles = [
        {
            "label": "versions",
            "value": charts.number(t.versions),
            "sub": plural(len(report.by_algorithm), "algorithm"),
        },
        {
            "label": "models",
            "value": charts.number(t.models),
            "sub": f"{len(report.production)} in production",
        },
        {
            "label": "validated",
            "value": charts.number(validated),
            "sub": f"{pct(validated, t.versions)} of versions",
        },
        {
            "label": "failed validation",
            "value": charts.number(failed),
            "sub": f"{pct(failed, t.versions)} of versions",
            "alert": bool(failed),
        },
        {
            "label": "stage changes",
            "value": charts.number(len(report.history)),
            "sub": "from git log -- models.yaml",
        },
    ]
    return [{"alert": False} | tile for tile in tiles]  # alert: failed validations, in red


def render_html(report: Report) -> str:
    """The whole report as one HTML document (inline CSS and SVG; no script, no external URL)."""
    prod = {p.model: p for p in report.production}
    total = report.totals.versions
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            report=report,
            gitreg_version=__version__,
            title=f"gitreg report — {report.registry}" + (f" — {report.model}" if report.model else ""),
            scope=f"model {report.model}" if report.model else "all models",
            generated=when(report.generated_at),
            kpis=_kpis(report),
            cards=[_card(report, m, prod.get(m.model)) for m in report.models],
            glance=[
                _counts("by status", report.by_status, total, "status"),
                _counts("by stage", report.by_stage, total, "stage"),
                _counts("by algorithm", report.by_algorithm, total, None),
            ],
            sections=_sections(report),
            history=report.history[:HISTORY_ROWS],
            more_history=len(report.history) - HISTORY_ROWS,
            status_class=STATUS_CLASS,
            stage_class=STAGE_CLASS,
        )
    )
