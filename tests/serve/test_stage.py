"""`gitreg serve --stage staging`: a staging fleet and a production fleet follow one models.yaml;
the staging agent serves the staging version, follows no canary, and says which stage it serves."""

from __future__ import annotations

import pytest

from gitreg.testing.cli import run_cli
from gitreg.testing.repos import promote_pushed as promote
from gitreg.testing.repos import register_pushed as register
from gitreg.testing.server import wait_for

pytestmark = pytest.mark.slow

V1 = "v2025-07-01--10h00"
V2 = "v2025-07-02--10h00"
V3 = "v2025-07-03--10h00"


def test_a_staging_fleet_and_a_production_fleet_share_one_registry(registry, remote, make_bundle, serve):
    for i, v in enumerate((V1, V2, V3), 1):
        register(registry, make_bundle(i), v)
    promote(registry, V1)
    registry.promote(V2, "staging", direct=True, push=True, force=True)
    promote(registry, V3, canary=50)
    production = serve(remote, "--poll", "0.5", "--seed", "1", name="prod")
    staging = serve(remote, "--poll", "0.5", "--stage", "staging", name="staging")
    assert staging.health()["stage"] == "staging" and production.health()["stage"] == "production"
    m = staging.model()
    assert (m["served"], m["wanted"], m["canary"]["served"]) == (V2, V2, None)
    assert {staging.predict().json()["version"] for _ in range(20)} == {V2}  # no canary split
    answer = staging.predict()
    assert (answer.headers["x-gitreg-stage"], answer.headers["x-gitreg-version"]) == ("staging", V2)
    assert production.predict().headers["x-gitreg-stage"] == "production"
    assert {production.predict().json()["version"] for _ in range(40)} == {V1, V3}
    registry.promote(V3, "staging", direct=True, push=True, force=True)  # staging moves on
    wait_for(lambda: staging.model()["served"] == V3, "staging serving V3", 60, staging)
    assert production.model()["served"] == V1


@pytest.mark.parametrize("stage", ["canary", "archived", "Bad!"])
def test_a_stage_that_cannot_be_served_is_refused(remote, stage):
    proc = run_cli("serve", "--repo", str(remote), "--stage", stage, "--port", "0")
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "not a stage to serve" in line
