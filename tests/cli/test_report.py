"""`gitreg report` and `gitreg lineage`: the report's numbers on a real registry, the HTML file
(self-contained, escaped), and the parent chain with its missing links and cycles."""

from __future__ import annotations

import itertools
import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gitreg.cli.html_report import nice_ticks, render_html
from gitreg.cli.render import sparkline
from gitreg.report import MetricPoint, MetricSeries, ModelSummary, ProductionEntry, Report, Totals
from gitreg.testing.cli import run_cli

EVIL = "<script>alert('x')</script>"
T0 = datetime(2025, 7, 1, tzinfo=UTC)


def meta(algo: str, metrics: dict[str, float], **extra: Any) -> dict[str, Any]:
    return {
        "algo": algo,
        "framework": "torchscript",
        "created_at": "2025-07-01T00:00:00+00:00",
        "metrics": metrics,
        **extra,
    }


def mark(registry: Any, version: str, passed: bool) -> None:
    """A validation record on the tag, as `gitreg validate --record` stores it."""
    from gitreg.metadata import ValidationRecord

    info = registry.get(version)
    record = ValidationRecord(
        version=version, passed=passed, checked_at=T0, checked_by="ci", files=info.files, checks=[]
    )
    registry.git.add_note(info.tag_object, record.to_note())


def register(
    registry: Any, make_bundle: Any, clock: Any, model: str, metadata: dict[str, Any], **kw: Any
) -> str:
    clock.advance(days=1)
    bundle = make_bundle(metadata=metadata, policy=b"not a real policy: the report never loads it")
    return str(registry.register(bundle, model, **kw).version)


# -- the report on a real registry ----------------------------------------------------------------------
@pytest.fixture
def populated(registry: Any, make_bundle: Any, clock: Any) -> dict[str, Any]:
    """policy: four versions (DQN, DQN, PPO, PPO), two in production one after the other, one in
    staging; pricer: one version whose metric name is a script tag."""
    p = [
        register(registry, make_bundle, clock, "policy", meta(algo, {"reward": r, "loss": loss}))
        for algo, r, loss in (
            ("DQN", 100.0, 0.9),
            ("DQN", 120.0, 0.7),
            ("PPO", 150.0, 0.5),
            ("PPO", 140.0, 0.6),
        )
    ]
    q = register(registry, make_bundle, clock, "pricer", meta("XGBoost", {EVIL: 1.5, "rmse": 2.0}))
    mark(registry, p[0], True)
    mark(registry, p[1], True)
    mark(registry, p[2], False)
    registry.promote(p[1], "production", direct=True, force=True)
    registry.promote(p[2], "production", direct=True, force=True)
    registry.promote(p[3], "staging", direct=True, force=True)
    registry.promote(p[0], "archived", direct=True, force=True)
    return {"policy": p, "pricer": q, "root": Path(registry.root)}


@pytest.mark.slow
def test_report_counts_production_history_and_metric_series(registry: Any, populated: dict[str, Any]):
    p, q = populated["policy"], populated["pricer"]
    report = registry.report()
    assert report.totals.versions == 5
    assert report.totals.models == 2
    assert report.by_status == {"validated": 2, "registered": 2, "failed": 1}
    assert report.by_stage == {"production": 1, "staging": 1, "canary": 0, "archived": 1}
    assert report.by_algorithm == {"DQN": 2, "PPO": 2, "XGBoost": 1}

    (prod,) = report.production
    assert (prod.model, prod.version, prod.algorithm, prod.status) == ("policy", p[2], "PPO", "failed")
    assert prod.metrics == {"reward": 150.0, "loss": 0.5}
    assert prod.previous == p[1]
    assert prod.since is not None

    changes = [(c.stage, c.version, c.previous) for c in report.history]
    assert changes == [  # newest first
        ("archived", p[0], None),
        ("staging", p[3], None),
        ("production", p[2], p[1]),
        ("production", p[1], None),
    ]

    series = {(s.model, s.metric): s for s in report.metrics}
    reward = series[("policy", "reward")]
    assert [pt.version for pt in reward.points] == p  # oldest first
    assert [pt.value for pt in reward.points] == [100.0, 120.0, 150.0, 140.0]
    assert [pt.registered_at for pt in reward.points] == sorted(pt.registered_at for pt in reward.points)
    assert reward.direction == "higher"
    assert series[("policy", "loss")].direction == "lower"
    assert [pt.value for pt in series[("pricer", EVIL)].points] == [1.5]
    assert {m.model: m.stages for m in report.models} == {
        "policy": {"production": p[2], "staging": p[3]},
        "pricer": {},
    }
    assert q == series[("pricer", "rmse")].points[0].version

    only = registry.report("pricer")
    assert only.model == "pricer"
    assert only.totals.versions == 1
    assert only.production == []
    assert only.history == []
    assert {s.metric for s in only.metrics} == {EVIL, "rmse"}


@pytest.mark.slow
def test_report_cli_json_terminal_and_html(populated: dict[str, Any], tmp_path: Path):
    root, p = populated["root"], populated["policy"]
    proc = run_cli("-C", str(root), "report", "--json", check=True)
    data = json.loads(proc.stdout)
    assert data["totals"] == {"versions": 5, "models": 2}
    assert data["by_status"]["failed"] == 1
    assert data["production"][0]["version"] == p[2]
    reward = next(s for s in data["metrics"] if s["model"] == "policy" and s["metric"] == "reward")
    assert [pt["value"] for pt in reward["points"]] == [100.0, 120.0, 150.0, 140.0]

    text = run_cli("-C", str(root), "report", check=True).stdout
    assert "production" in text and p[2] in text and "reward" in text

    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    proc = run_cli("-C", str(root), "report", "--html", str(out), check=True)
    assert proc.stdout.strip() == str(out)
    assert [f.name for f in out.parent.iterdir()] == ["report.html"]  # no temp file left behind
    page = out.read_text()
    assert page.startswith("<!doctype html>")
    assert page.count("<svg") == 4  # policy: reward, loss; pricer: rmse and the script-named one
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", page)  # nothing loaded from anywhere
    assert "<script" not in page
    assert html_escaped(EVIL) in page
    for version in p:
        assert version in page

    bad = run_cli("-C", str(root), "report", "--json", "--html", str(out))
    assert bad.returncode == 1
    assert "exclusive" in bad.stderr
    missing = run_cli("-C", str(root), "report", "--model", "nope")
    assert missing.returncode == 1
    assert "no model 'nope'" in missing.stderr


def html_escaped(text: str) -> str:
    import html

    return html.escape(text, quote=True)


# -- lineage -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_lineage_follows_parents_and_reports_a_missing_one(registry: Any, make_bundle: Any, clock: Any):
    def lineage_meta(parent: str | None, n: int) -> dict[str, Any]:
        extra: dict[str, Any] = {"data_version": f"ds-{n}", "code_commit": f"abc{n}"}
        if parent:
            extra["parent"] = parent
        return meta("DQN", {"reward": float(n)}, **extra)

    v1 = register(registry, make_bundle, clock, "policy", lineage_meta("v2024-01-01--00h00", 1))
    v2 = register(registry, make_bundle, clock, "policy", lineage_meta(v1, 2))
    v3 = register(registry, make_bundle, clock, "policy", lineage_meta(v2, 3))

    node = registry.lineage(v3)
    chain = []
    while node is not None:
        chain.append(node)
        last, node = node, node.parent
    assert [n.version for n in chain] == [v3, v2, v1]
    assert [n.data_version for n in chain] == ["ds-3", "ds-2", "ds-1"]
    assert [n.code_commit for n in chain] == ["abc3", "abc2", "abc1"]
    assert last.missing_parent == "v2024-01-01--00h00"
    assert all(n.missing_parent is None for n in chain[:-1])

    cut = registry.lineage(v3, max_depth=2)
    assert cut.parent is not None and cut.parent.parent is None
    assert cut.parent.continues_at == v1

    proc = run_cli("-C", str(registry.root), "lineage", v3, "--json", check=True)
    data = json.loads(proc.stdout)
    assert data["version"] == v3
    assert data["parent"]["parent"]["version"] == v1
    assert data["parent"]["parent"]["missing_parent"] == "v2024-01-01--00h00"

    tree = run_cli("-C", str(registry.root), "lineage", v3, check=True).stdout
    for v in (v1, v2, v3):
        assert v in tree
    assert "ds-2" in tree and "abc1" in tree
    assert "not a version tag" in tree

    unknown = run_cli("-C", str(registry.root), "lineage", "v2030-01-01--00h00")
    assert unknown.returncode == 1
    assert "no version" in unknown.stderr


@pytest.mark.slow
def test_lineage_stops_on_a_cycle(registry: Any, make_bundle: Any, clock: Any):
    a, b = "v2025-01-01--00h00", "v2025-01-02--00h00"
    register(registry, make_bundle, clock, "policy", meta("DQN", {}, parent=b), version=a)
    register(registry, make_bundle, clock, "policy", meta("DQN", {}, parent=a), version=b)
    node = registry.lineage(b)
    assert node.version == b
    assert node.parent is not None and node.parent.version == a
    assert node.parent.parent is None
    assert node.parent.cycle_at == b


# -- fast: the HTML renderer and its helpers on a synthetic report ------------------------------------
def synthetic(n: int = 5, metric: str = "reward") -> Report:
    points = [
        MetricPoint(version=f"v2025-07-0{i + 1}--10h00", registered_at=T0 + timedelta(days=i), value=10.0 * i)
        for i in range(n)
    ]
    prod = points[-2].version
    return Report(
        generated_at=T0,
        registry=f"repo {EVIL}",
        totals=Totals(versions=n, models=2),
        by_status={"validated": n, "registered": 0, "failed": 0},
        by_stage={"production": 1, "staging": 0, "canary": 0, "archived": 0},
        by_algorithm={EVIL: n},
        models=[
            ModelSummary(model="policy", versions=n, stages={"production": prod}),
            ModelSummary(model="b", versions=0),
        ],
        production=[
            ProductionEntry(
                model="policy",
                version=prod,
                algorithm=EVIL,
                registered_at=T0,
                status="validated",
                metrics={metric: 30.0},
            )
        ],
        history=[],
        metrics=[MetricSeries(model="policy", metric=metric, direction="higher", points=points)],
    )


def test_html_is_self_contained_and_escapes_registry_strings():
    page = render_html(synthetic(metric=EVIL))
    assert "<script" not in page
    assert page.count(html_escaped(EVIL)) >= 4  # registry name, algorithm, metric title, tooltips
    assert "http://" not in page and "https://" not in page
    assert page.count("<svg") == 1
    assert page.count("<title>") == 1 + 5  # the page's, and one per point
    assert 'class="pt prod"' in page  # the production version is highlighted
    assert "no production version" in page  # model b


def test_html_charts_keep_hover_labels_only_for_marked_points_when_huge():
    page = render_html(synthetic(n=1000))
    assert page.count("<svg") == 1
    assert page.count('class="tip"') == 1  # the production point keeps its label; the line carries the rest


@pytest.mark.parametrize(
    ("lo", "hi"),
    [
        (0.0, 1.0),
        (182.2, 292.8),
        (0.12, 0.074),
        (5.0, 5.0),
        (0.0, 0.0),
        (-3.0, 7.0),
        (1e-5, 3e-5),
        (1e6, 1.06e6),
    ],
)
def test_nice_ticks_cover_the_range_with_round_steps(lo: float, hi: float):
    ticks = nice_ticks(lo, hi)
    assert ticks[0] <= min(lo, hi) and ticks[-1] >= max(lo, hi)
    assert ticks[0] < ticks[-1]
    assert 2 <= len(ticks) <= 12
    steps = [b - a for a, b in itertools.pairwise(ticks)]
    assert all(abs(s - steps[0]) <= 1e-9 * abs(steps[0]) for s in steps)
    mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
    assert round(mantissa, 9) in (1, 2, 2.5, 5, 10)


def test_sparkline():
    assert sparkline([1.0, 2.0, 3.0]) == "▁▅█"
    assert sparkline([2.0, 2.0]) == "▄▄"
    assert sparkline([]) == ""
    assert len(sparkline([float(i) for i in range(100)])) == 24
