"""deploy/prometheus and deploy/grafana against the code: the alert rules pass `promtool check
rules` and their own `promtool test rules` unit tests (every alert tested firing and quiet), and
every metric the rules and the dashboard query is one that `gitreg serve` exports (its metrics
registry), so neither can drift from the code. promtool comes from Debian's `prometheus`
package (.ci/run installs it); without it these tests skip, except under CI, where they fail."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "gitreg-alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "gitreg-alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "gitreg-serve.json"
PROMETHEUS_SERIES = {"up"}  # what Prometheus itself records per target
# Grafana's variables, as Grafana substitutes them, to hand a dashboard query to promtool
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$instance": ".*", "$model": ".*"}

# -- PromQL: the metric names an expression reads ----------------------------------------------------
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless"}
KEYWORDS |= {"offset", "inf", "nan"}  # (a number's exponent or a duration's unit follows a digit)


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects: identifiers that are neither a function or an
    aggregation (followed by a parenthesis), a keyword, nor inside a string, a label matcher
    ``{...}``, a range ``[...]`` or a grouping clause ``by (...)``."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", text):
        if text[m.end() :].lstrip().startswith("(") or m.group().lower() in KEYWORDS:
            continue
        names.add(m.group())
    return names


def exported_names() -> set[str]:
    """Every series name `gitreg serve` can expose on /metrics: each metric of its registry
    with the suffixes the Prometheus text format gives its type."""
    from gitreg.serve.metrics import Metrics

    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
    }
    return {family.name + s for family in Metrics().registry.collect() for s in suffixes[family.type]}


def test_metric_names_finds_the_selected_metrics_only() -> None:
    expr = (
        'sum by (job, model) (rate(gitreg_requests_total{outcome="error", model=~"a|b"}[5m]))'
        " / ignoring(outcome) group_left sum(rate(gitreg_requests_total[$__rate_interval] offset 1h))"
        ' > 0.05 and on(instance) absent(up{job="x"}) or time() - last_sync > 6e2 unless bool vector(1)'
        " or histogram_quantile(0.99, sum without (le) (rate(lat_bucket[5m])))"
        ' or label_replace(info, "dst", "$1", "src", "(.*)")'
    )
    assert metric_names(expr) == {"gitreg_requests_total", "up", "last_sync", "lat_bucket", "info"}
    assert metric_names("gitreg_wanted_version_info unless gitreg_served_version_info") == {
        "gitreg_wanted_version_info",
        "gitreg_served_version_info",
    }


def test_exported_names_carry_the_text_format_suffixes() -> None:
    names = exported_names()
    assert {"gitreg_requests_total", "gitreg_request_latency_seconds_bucket"} <= names
    assert {"gitreg_served_version_info", "gitreg_last_sync_timestamp_seconds"} <= names
    assert "gitreg_requests" not in names and "gitreg_last_sync_timestamp_seconds_total" not in names


# -- the alert rules -------------------------------------------------------------------------------
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package, which has it")
        pytest.skip("needs promtool (apt-get install prometheus); CI installs it")
    return path


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in load_yaml(RULES)["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_checks_the_alert_rules() -> None:
    r = run_promtool("check", "rules", RULES.name, cwd=RULES.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in r.stdout


def test_promtool_unit_tests_of_the_alert_rules_pass() -> None:
    r = run_promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    tests = [t for case in load_yaml(RULE_TESTS)["tests"] for t in case.get("alert_rule_test", [])]
    fires = {t["alertname"] for t in tests if t.get("exp_alerts")}
    quiet = {t["alertname"] for t in tests if not t.get("exp_alerts")}
    names = {r["alert"] for r in alert_rules()}
    assert len(names) == len(alert_rules()), "two alerts share a name"
    assert names >= {
        "GitregServeDown", "GitregServeAbsent", "GitregSyncStale", "GitregServedNotWanted",
        "GitregFallback", "GitregHighErrorRate", "GitregHighLatencyP99", "GitregVersionRejected",
    }  # fmt: skip
    assert not names - fires, f"never tested firing: {sorted(names - fires)}"
    assert not names - quiet, f"never tested quiet: {sorted(names - quiet)}"
    assert not (fires | quiet) - names, (
        f"tests of alerts that do not exist: {sorted((fires | quiet) - names)}"
    )
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_the_alert_rules_read_only_metrics_gitreg_serve_exports() -> None:
    known = exported_names() | PROMETHEUS_SERIES
    used = {name for rule in alert_rules() for name in metric_names(rule["expr"])}
    assert used, "no metric found in the rules: the parser is broken"
    assert not used - known, f"the rules read metrics nothing exports: {sorted(used - known)}"
    assert {"gitreg_wanted_version_info", "gitreg_rejected_version_info"} <= used


# -- the dashboard ---------------------------------------------------------------------------------
def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def dashboard_queries(d: dict[str, Any]) -> list[str]:
    """Every panel target's PromQL, and the metric each `label_values(metric, label)` variable reads."""
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    for var in d["templating"]["list"]:
        query = var.get("query")
        text = query.get("query", "") if isinstance(query, dict) else ""
        m = re.fullmatch(r"label_values\((.+),\s*\w+\)", text.strip())
        if var["type"] == "query":
            assert m, f"variable {var['name']}: not a label_values(metric, label) query: {text!r}"
            exprs.append(m.group(1))
    return exprs


def test_the_dashboard_is_valid_with_unique_panel_ids_and_a_datasource_variable() -> None:
    d = dashboard()
    assert d["uid"] and d["title"] and d["schemaVersion"] >= 36
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for p in d["panels"]:
        sources = [p["datasource"], *(t["datasource"] for t in p["targets"])]
        assert all(s == {"type": "prometheus", "uid": "${datasource}"} for s in sources), p["title"]
        assert p["targets"] and all(t["expr"].strip() for t in p["targets"]), p["title"]
        assert {"x", "y", "w", "h"} <= set(p["gridPos"]), p["title"]
    titles = " | ".join(p["title"].lower() for p in d["panels"])
    for wanted in (
        "request rate",
        "error rate",
        "p99",
        "served version",
        "sync",
        "fallback",
        "rejected",
        "swap",
    ):
        assert wanted in titles, f"no panel for {wanted}: {titles}"


def test_the_dashboard_queries_only_metrics_gitreg_serve_exports() -> None:
    known = exported_names() | PROMETHEUS_SERIES
    used = {name for expr in dashboard_queries(dashboard()) for name in metric_names(expr)}
    assert len(used) >= 8, used
    assert not used - known, f"the dashboard queries metrics nothing exports: {sorted(used - known)}"


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each query, with Grafana's variables substituted, as a recording rule: promtool parses it."""
    rules = []
    for i, query in enumerate(dashboard_queries(dashboard())):
        expr = query
        for var, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
            expr = expr.replace(var, value)
        assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))  # JSON is YAML
    r = run_promtool("check", "rules", path.name, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
