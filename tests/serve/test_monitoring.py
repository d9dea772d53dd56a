"""End-to-end: what the alert rules and the dashboard of deploy/ read from a real `gitreg serve`:
the wanted-version and refused-version info metrics follow models.yaml and the agent's decisions,
and every gitreg metric the rules and the dashboard name is on /metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from gitreg.testing.repos import promote_pushed as promote
from gitreg.testing.repos import register_pushed as register
from gitreg.testing.server import NO_FALLBACK
from gitreg.testing.server import wait_for as wait_until

pytestmark = pytest.mark.slow

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
V1 = "v2025-07-01--10h00"
V2 = "v2025-07-02--10h00"


def gitreg_names_in_deploy() -> set[str]:
    """Every gitreg_* series the alert rules and the dashboard's queries name."""
    rules = YAML(typ="safe").load((DEPLOY / "prometheus" / "gitreg-alerts.yml").read_text())
    dashboard = json.loads((DEPLOY / "grafana" / "gitreg-serve.json").read_text())
    queries = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    queries += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queries += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return set(re.findall(r"\bgitreg_[a-z_]+\b", "\n".join(queries)))


def exposed(text: str) -> set[str]:
    """The sample names on a /metrics page."""
    return {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][\w:]*)[{ ]", text, re.MULTILINE)}


def test_wanted_and_refused_versions_and_every_metric_the_deploy_files_use(
    registry, remote, make_bundle, serve
):
    register(registry, make_bundle(1), V1)
    register(registry, make_bundle(2, policy=b"\x00not a model\xff" * 64), V2)
    promote(registry, V1)
    server = serve(remote, "--poll", "0.5", *NO_FALLBACK)
    wanted = {"model": "policy", "role": "production"}
    assert server.metric("gitreg_wanted_version_info", **wanted, version=V1) == 1
    assert server.metric("gitreg_served_version_info", **wanted, version=V1) == 1
    assert server.metric("gitreg_fallbacks_total", model="policy", role="production") == 0
    assert 'gitreg_fallbacks_total{model="policy",role="production"} 0.0' in server.get("/metrics").text
    assert "gitreg_rejected_version_info{" not in server.get("/metrics").text
    assert server.predict().status_code == 200

    promote(registry, V2)  # not a model: refused, and V1 keeps serving
    wait_until(
        lambda: server.metric("gitreg_rejected_version_info", model="policy", version=V2) == 1,
        f"{V2} refused",
        120,
        server,
    )
    assert server.metric("gitreg_wanted_version_info", **wanted, version=V2) == 1
    assert server.metric("gitreg_wanted_version_info", **wanted, version=V1) == 0  # gone, not 0
    assert server.metric("gitreg_served_version_info", **wanted, version=V1) == 1
    text = server.get("/metrics").text
    assert f'gitreg_wanted_version_info{{model="policy",role="production",version="{V1}"}}' not in text
    used = gitreg_names_in_deploy()
    assert len(used) >= 10, used  # every gitreg metric is read by a rule or a panel
    missing = used - exposed(text)
    assert not missing, f"deploy/ names metrics that gitreg serve does not expose: {sorted(missing)}"

    promote(registry, V1)  # back to V1: the entry changed, V2 is no longer refused
    wait_until(
        lambda: "gitreg_rejected_version_info{" not in server.get("/metrics").text,
        f"{V2} no longer refused",
        120,
        server,
    )
    assert server.metric("gitreg_wanted_version_info", **wanted, version=V1) == 1
