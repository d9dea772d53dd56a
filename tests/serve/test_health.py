"""/health is a typed body: `gitreg.serve.health.HealthReport`, with the field names clients
(`gitreg status --server`, probes, dashboards) have always read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from gitreg.serve import HealthReport
from gitreg.serve.agent import Agent
from gitreg.serve.app import create_app
from gitreg.serve.config import AgentConfig, ServeOptions, Thresholds
from gitreg.serve.slots import Served

V1 = "v2025-07-01--10h00"
V2 = "v2025-07-02--10h00"
V3 = "v2025-07-03--10h00"

TOP = {
    "status",
    "repo",
    "branch",
    "stage",
    "commit",
    "last_sync",
    "last_attempt",
    "last_error",
    "sync_failures",
    "models",
}
MODEL = {
    "served",
    "wanted",
    "canary",
    "previous",
    "last_error",
    "rejected",
    "fallbacks",
    "stats",
    "input_shapes",
}


def version(v: str, fail: bool = False) -> Served:
    def predict(inputs: Any) -> list[Any]:
        if fail:
            raise RuntimeError("broken")
        return [[0.0] for _ in inputs]

    return Served(model="policy", version=v, commit="c" * 40, predict=predict, input_shape=[4])


def test_health_body_is_a_health_report_with_the_same_field_names(tmp_path: Path) -> None:
    t = Thresholds(max_error_rate=0.1, min_requests=3, window=10)
    agent = Agent(AgentConfig(repo="https://u:p@git.example.com/r.git", cache=tmp_path, thresholds=t))
    s = agent._slot("policy")
    s.swap_production(version(V1))
    s.swap_production(version(V2, fail=True))
    s.set_canary(version(V3), 25)
    s.wanted_production, s.wanted_canary = V2, V3
    agent.publish(s)
    agent.state.last_sync = agent.state.last_attempt = 1.0e9
    agent.state.commit = "c" * 40
    c = TestClient(create_app(agent, ServeOptions(), manage_agent=False), raise_server_exceptions=False)
    for _ in range(3):  # V2 breaches the error rate: production falls back to V1
        s.record(s.production, False, 0.001)
    r = c.get("/health")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    raw = r.json()
    assert set(raw) == TOP and set(raw["models"]["policy"]) == MODEL
    assert set(raw["models"]["policy"]["canary"]) == {"served", "wanted", "traffic"}

    h = HealthReport.model_validate_json(r.content)
    assert h.status == "degraded" and not h.ok  # V2 is wanted but not served
    assert h.repo == "https://***@git.example.com/r.git" and h.commit == "c" * 40
    assert h.last_sync == "2001-09-09T01:46:40+00:00" and h.sync_failures == 0
    m = h.models["policy"]
    assert (m.served, m.wanted, m.previous) == (V1, V2, None)
    assert (m.canary.served, m.canary.wanted, m.canary.traffic) == (V3, V3, 25.0)
    (fb,) = m.fallbacks
    assert (fb.version, fb.role, fb.restored) == (V2, "production", V1) and "error rate" in fb.reason
    assert "fell back" in m.rejected[V2]
    assert m.stats[V1].requests == 0 and m.stats[V3].window == 0

    # a client parses an older body (no optional fields) and a newer one (unknown fields) alike
    old = HealthReport.model_validate_json('{"status": "ok", "repo": "r", "branch": "main", "models": {}}')
    assert old.ok and old.last_sync is None and old.models == {}
    new = HealthReport.model_validate({**raw, "future": 1, "models": {"policy": {"served": V1, "x": 2}}})
    assert new.models["policy"].served == V1 and new.models["policy"].canary.traffic == 0.0
