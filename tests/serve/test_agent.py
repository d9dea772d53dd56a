"""The deploy agent's parts without a network, a Git remote or (but for one runtime test) torch:
canary routing with a seeded RNG, the sliding-window fallback, input checks, the agent's
convergence rules (with a fake loader) and every HTTP endpoint through FastAPI's TestClient on
an Agent whose slots are filled directly."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import random
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gitreg.errors import DigestMismatch, GitregError, StorageError
from gitreg.manifest import Canary, ModelEntry
from gitreg.serve.agent import Agent, AgentConfig
from gitreg.serve.app import MAX_WEBHOOK_BYTES, ServeOptions, create_app, health_report, redact
from gitreg.serve.runtime import FLOAT32_MAX, BadInput, check_inputs
from gitreg.serve.slots import ModelSlot, NotServing, Served, Thresholds, VersionStats
from gitreg.testing.repos import git

V1 = "v2025-07-01--10h00"
V2 = "v2025-07-02--10h00"
V3 = "v2025-07-03--10h00"
SECRET = "s3cret-hook"
TOKEN = "t0ken"


def summing(row: list[Any]) -> float:
    return float(sum(summing(x) if isinstance(x, list) else x for x in row))


def served(
    version: str, *, fail: bool = False, model: str = "policy", shape: list[int] | None = None
) -> Served:
    def predict(inputs: Any) -> list[Any]:
        if fail:
            raise RuntimeError(f"{version} is broken")
        return [[summing(row)] for row in inputs]

    return Served(
        model=model,
        version=version,
        commit="c" * 40,
        predict=predict,
        metadata={"algo": "DQN"},
        input_shape=[4] if shape is None else shape,
    )


def slot(thresholds: Thresholds | None = None, seed: int = 7) -> ModelSlot:
    return ModelSlot("policy", thresholds or Thresholds(), random.Random(seed))


# -- routing and canary share -----------------------------------------------------------------------
def test_route_without_anything_loaded_is_not_serving():
    with pytest.raises(NotServing):
        slot().route()


def test_route_sends_the_canary_its_share_reproducibly():
    def shares(seed: int) -> list[str]:
        s = slot(seed=seed)
        s.swap_production(served(V1))
        s.set_canary(served(V2), 20)
        return [s.route().version for _ in range(10_000)]

    first = shares(42)
    assert first == shares(42)  # seeded: the same split every run
    assert first != shares(43)
    share = first.count(V2) / len(first)
    assert abs(share - 0.20) < 0.02, share
    assert set(first) == {V1, V2}


@pytest.mark.parametrize(("traffic", "expected"), [(0, {V1}), (100, {V2})])
def test_canary_traffic_bounds(traffic, expected):
    s = slot()
    s.swap_production(served(V1))
    s.set_canary(served(V2), traffic)
    assert {s.route().version for _ in range(2000)} == expected


def test_traffic_change_and_canary_removal():
    s = slot(seed=1)
    s.swap_production(served(V1))
    s.set_canary(served(V2), 10)
    s.set_traffic(50)
    routed = [s.route().version for _ in range(4000)]
    assert abs(routed.count(V2) / 4000 - 0.5) < 0.04
    s.set_canary(None, 0)
    assert {s.route().version for _ in range(500)} == {V1}


def test_a_canary_alone_answers_everything():
    s = slot()
    s.set_canary(served(V2), 5)
    assert {s.route().version for _ in range(200)} == {V2}


def test_swap_keeps_the_previous_and_puts_only_replacements_on_probation():
    s = slot()
    s.swap_production(served(V1))
    assert s.previous is None and s.on_probation == set()  # nothing to fall back to
    s.swap_production(served(V1))  # the same version again: previous stays empty
    assert s.previous is None
    s.swap_production(served(V2))
    assert s.production.version == V2 and s.previous.version == V1
    assert V2 in s.on_probation
    assert [x.version for x in s.served_versions()] == [V2, V1]


def test_a_request_keeps_the_version_it_was_routed_to_across_a_swap():
    s = slot()
    s.swap_production(served(V1))
    held = s.route()
    s.swap_production(served(V2))
    assert held.version == V1
    assert held.predict([[1, 2, 3, 4]]) == [[10.0]]  # the old version still answers
    assert s.route().version == V2


# -- sliding window and fallback --------------------------------------------------------------------
def test_version_stats_window_error_rate_and_p99():
    st = VersionStats(window=100)
    assert st.snapshot() == (0, 0.0, 0.0)
    for i in range(150):
        st.record(i % 10 != 0, 0.001 * (i % 100))
    n, err, p99 = st.snapshot()
    assert n == 100 and st.total == 150 and st.errors == 15
    assert err == pytest.approx(0.10)
    assert p99 == pytest.approx(99.0)  # ms: the window holds latencies 0..99 ms


@pytest.mark.parametrize("window", [1, 7, 50])
def test_version_stats_match_a_recount_of_the_window(window):
    rng = random.Random(window)
    st = VersionStats(window=window)
    seen: list[tuple[bool, float]] = []
    for i in range(400):
        ok, latency = rng.random() > 0.3, rng.choice([0.001, 0.002, 0.5, rng.random()])
        st.record(ok, latency)
        seen.append((ok, latency))
        last = seen[-window:]
        lat = sorted(x for _, x in last)
        expected = (
            len(last),
            sum(1 for ok, _ in last if not ok) / len(last),
            lat[int(len(lat) * 0.99)] * 1000,
        )
        assert st.snapshot() == pytest.approx(expected), i
    assert st.total == 400 and st.errors == sum(1 for ok, _ in seen if not ok)


def test_version_stats_without_a_window_still_count():
    st = VersionStats(window=0)
    st.record(False, 0.1)
    st.record(True, 0.1)
    assert (st.total, st.errors) == (2, 1)
    assert st.snapshot() == (0, 0.0, 0.0)


def test_a_failing_new_production_falls_back_after_min_requests():
    s = slot(Thresholds(max_error_rate=0.1, max_p99_ms=1000, min_requests=10, window=50))
    v1, v2 = served(V1), served(V2, fail=True)
    s.swap_production(v1)
    s.swap_production(v2)
    for _ in range(9):
        assert s.record(v2, False, 0.001) is None  # not judged before min_requests
    event = s.record(v2, False, 0.001)
    assert event is not None
    assert (event.version, event.role, event.restored) == (V2, "production", V1)
    assert "error rate" in event.reason
    assert s.production is v1 and s.previous is None
    assert V2 in s.rejected and "fell back" in s.rejected[V2]
    assert V2 not in s.on_probation
    assert [f.version for f in s.fallbacks] == [V2]
    assert s.record(v2, False, 0.001) is None  # a late request on v2 does not fall back twice
    s.manifest_changed()
    assert s.rejected == {}


def test_a_slow_new_production_falls_back_on_p99():
    s = slot(Thresholds(max_error_rate=0.5, max_p99_ms=50, min_requests=5, window=50))
    v1, v2 = served(V1), served(V2)
    s.swap_production(v1)
    s.swap_production(v2)
    events = [s.record(v2, True, 0.2) for _ in range(5)]
    assert events[:4] == [None] * 4
    assert events[4] is not None and "p99 latency" in events[4].reason
    assert s.production is v1


def test_the_first_version_is_never_judged_and_a_good_one_leaves_probation():
    t = Thresholds(max_error_rate=0.1, max_p99_ms=1000, min_requests=5, window=20)
    s = slot(t)
    v1 = served(V1)
    s.swap_production(v1)
    for _ in range(30):
        assert s.record(v1, False, 5.0) is None  # nothing to fall back to: keep serving
    assert s.production is v1

    v2 = served(V2)
    s.swap_production(v2)
    for _ in range(20):
        assert s.record(v2, True, 0.001) is None
    assert V2 not in s.on_probation  # a full good window: judged no more
    for _ in range(20):
        assert s.record(v2, False, 0.001) is None
    assert s.production is v2


def test_a_failing_canary_is_dropped_and_production_keeps_serving():
    s = slot(Thresholds(max_error_rate=0.2, max_p99_ms=1000, min_requests=4, window=50))
    v1, v2 = served(V1), served(V2, fail=True)
    s.swap_production(v1)
    s.set_canary(v2, 30)
    events = [s.record(v2, False, 0.001) for _ in range(4)]
    assert events[-1] is not None and events[-1].role == "canary" and events[-1].restored is None
    assert s.canary is None and s.production is v1
    assert V2 in s.rejected
    assert {s.route().version for _ in range(200)} == {V1}


# -- input checks -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("inputs", "shape", "batch"),
    [
        ([[1, 2, 3, 4]], [4], 1),
        ([[1.5, -2, 0, 3.4e38]] * 3, [4], 3),
        ([[10**30, -(10**30), 0, 1]], [4], 1),
        ([[[1, 2], [3, 4]]], [2, 2], 1),
        ([[1, 2], [3, 4]], None, 2),  # no metadata shape: rows only have to agree
        ([1.0, 2.0], None, 2),
        ([[1, 2, 3, 4]] * 8, [4], 8),
    ],
)
def test_check_inputs_accepts(inputs, shape, batch):
    assert check_inputs(inputs, shape, max_batch=8) == batch


@pytest.mark.parametrize(
    ("inputs", "shape", "words"),
    [
        ({"x": 1}, [4], "non-empty list"),
        ([], [4], "non-empty list"),
        ("1,2,3,4", [4], "non-empty list"),
        ([[1, 2, 3, 4]] * 9, [4], "larger than the limit"),
        ([[1, 2, 3]], [4], "shape [3]"),
        ([[1, 2, 3, 4, 5]], [4], "shape [5]"),
        ([[[1, 2, 3, 4]]], [4], "shape [1, 4]"),
        ([1, 2, 3, 4], [4], "shape []"),
        ([["a", 2, 3, 4]], [4], "str"),
        ([[None, 2, 3, 4]], [4], "NoneType"),
        ([[True, 2, 3, 4]], [4], "bool"),
        ([[{"a": 1}, 2, 3, 4]], [4], "dict"),
        ([[math.nan, 2, 3, 4]], [4], "finite"),
        ([[math.inf, 2, 3, 4]], [4], "finite"),
        ([[1e39, 2, 3, 4]], [4], "float32 range"),  # would be inf inside the model
        ([[-(10**400), 2, 3, 4]], [4], "float32 range"),  # not even a float
        ([[[1, 2], [3]]], None, "ragged"),
        ([[1, 2], [3]], None, "shape [1]"),
        ([[]], None, "empty list"),
        ([[[[[[[[[[[1]]]]]]]]]]], None, "nested too deeply"),
    ],
)
def test_check_inputs_rejects(inputs, shape, words):
    with pytest.raises(BadInput) as e:
        check_inputs(inputs, shape, max_batch=8)
    assert words in str(e.value)


class Count(int):
    """An int subclass: not a plain int, so it takes the item-by-item walk, which accepts it."""


@pytest.mark.parametrize(
    ("inputs", "shape", "error"),
    [
        ([[FLOAT32_MAX, -FLOAT32_MAX, 0, 1]] * 1024, [4], None),
        ([[1, 2, 3, 4]] * 1023 + [[1, 2, math.inf, 4]], [4], "inputs[1023][2] is not a finite number"),
        ([[1, 2, 3, 4]] * 1023 + [[1, 2, 3]], [4], "inputs[1023] has shape [3]"),
        ([[1, 2, 3, 4]] * 1023 + [[1, 2, 3, [4]]], [4], "inputs[1023] is ragged"),
        ([[1, 2, 3, 4]] * 5 + [[1, False, 3, 4]], [4], "inputs[5][1] is bool"),
        ([[3.4028235e38, 0, 0, 0]], [4], "inputs[0][0] is out of the float32 range"),
        ([[10**39, 0, 0, 0]], [4], "inputs[0][0] is out of the float32 range"),
        ([[Count(1), 2, 3, 4]], [4], None),
        ([[[1, 2], [3, 4]]] * 64, [2, 2], None),
        ([[[1, 2], [3, 4]]] * 63 + [[[1, 2], [3, "4"]]], [2, 2], "inputs[63][1][1] is str"),
        ([[[1.0] * 3] * 2] * 4, None, None),
        (
            [[[1.0] * 3] * 2] * 3 + [[[1.0] * 3] * 3],
            None,
            "inputs[3] has shape [3, 3], the model takes [2, 3]",
        ),
    ],
)
def test_check_inputs_names_the_first_bad_item_in_a_large_batch(inputs, shape, error):
    if error is None:
        assert check_inputs(inputs, shape, max_batch=1024) == len(inputs)
    else:
        with pytest.raises(BadInput) as e:
            check_inputs(inputs, shape, max_batch=1024)
        assert error in str(e.value)


def test_torch_policy_refuses_non_finite_outputs(tmp_path):
    torch = pytest.importorskip("torch")
    from gitreg.runtime import SMALL_OUTPUT, TorchPolicy

    class Log(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.log(x)  # -inf at 0, NaN below

    path = tmp_path / "policy.pt"
    torch.jit.script(Log()).save(str(path))
    policy = TorchPolicy(path, [2])
    assert policy.predict([[1.0, 1.0]]) == [[0.0, 0.0]]
    wide = SMALL_OUTPUT  # a batch of 2 rows: twice SMALL_OUTPUT values, checked by torch
    assert policy.predict([[1.0] * wide] * 2) == [[0.0] * wide] * 2
    for bad in ([[1.0, 0.0]], [[-1.0, 1.0]], [[1.0] * wide, [1.0] * (wide - 1) + [0.0]]):
        with pytest.raises(RuntimeError, match="NaN or infinite"):
            policy.predict(bad)


# -- the agent's convergence rules (fake loader, no Git) --------------------------------------------
class FakeAgent(Agent):
    """An agent whose `_load` hands out fake versions (or raises what a version is told to)."""

    def __init__(
        self, tmp: Path, failures: dict[str, BaseException] | None = None, repo: str = "file:///nowhere"
    ) -> None:
        super().__init__(AgentConfig(repo=repo, cache=tmp, seed=3))
        self.failures = failures or {}
        self.loads: list[str] = []

    def _load(self, reg: Any, model: str, version: str) -> Served:
        self.loads.append(version)
        if version in self.failures:
            raise self.failures[version]
        return served(version, model=model)


def converge(agent: FakeAgent, production: str | None, canary: tuple[str, float] | None = None) -> ModelSlot:
    entry = ModelEntry(
        path="models/policy",
        stages={"production": production} if production else {},
        canary=Canary(version=canary[0], traffic=canary[1]) if canary else None,
    )
    s = agent._slot("policy")
    s.wanted_production = production
    s.wanted_canary = canary[0] if canary else None
    agent._converge(None, s, entry)
    return s


def test_agent_swaps_rolls_back_instantly_and_sets_the_canary(tmp_path):
    agent = FakeAgent(tmp_path)
    s = converge(agent, V1)
    assert s.production.version == V1 and agent.loads == [V1]
    converge(agent, V1)
    assert agent.loads == [V1]  # nothing to do
    converge(agent, V2)
    assert (s.production.version, s.previous.version) == (V2, V1)
    converge(agent, V1)  # a rollback to the previous version needs no load
    assert agent.loads == [V1, V2]
    assert (s.production.version, s.previous.version) == (V1, V2)

    converge(agent, V1, (V3, 25))
    assert s.canary.version == V3 and s.canary_traffic == 25
    converge(agent, V1, (V3, 40))
    assert s.canary_traffic == 40 and agent.loads.count(V3) == 1
    converge(agent, V1, None)
    assert s.canary is None


def test_agent_rejects_a_broken_version_until_the_manifest_changes(tmp_path):
    from gitreg.serve.agent import Rejected

    agent = FakeAgent(tmp_path, {V2: DigestMismatch("policy.pt", "a" * 32, "b" * 32)})
    s = converge(agent, V1)
    with pytest.raises(Rejected) as e:
        converge(agent, V2)
    assert V2 in e.value.message
    assert V2 in s.rejected and s.production.version == V1
    converge(agent, V2)  # not retried: no second load
    assert agent.loads == [V1, V2]
    s.manifest_changed()
    with pytest.raises(Rejected):
        converge(agent, V2)
    assert agent.loads == [V1, V2, V2]


def test_agent_retries_a_transient_failure_and_keeps_serving(tmp_path):
    agent = FakeAgent(tmp_path, {V2: StorageError("cannot read from the DVC remote: connection refused")})
    s = converge(agent, V1)
    with pytest.raises(StorageError):
        converge(agent, V2)
    assert s.rejected == {} and s.production.version == V1
    del agent.failures[V2]
    converge(agent, V2)
    assert s.production.version == V2


def test_agent_does_not_retake_a_version_it_fell_back_from(tmp_path):
    agent = FakeAgent(tmp_path)
    agent.config.thresholds = Thresholds(max_error_rate=0.1, max_p99_ms=1000, min_requests=3, window=10)
    s = converge(agent, V1)
    s.thresholds = agent.config.thresholds
    converge(agent, V2)
    v2 = s.production
    for _ in range(3):
        s.record(v2, False, 0.01)
    assert s.production.version == V1
    converge(agent, V2)  # the manifest still says V2: not taken again
    assert s.production.version == V1 and agent.loads == [V1, V2]


# -- whole syncs against a real bare Git remote (models.yaml only: the loads are fake) ------------
class ManifestRemote:
    """A bare repo whose main branch carries a models.yaml, changed by commits from a clone."""

    def __init__(self, tmp: Path) -> None:
        self.bare = tmp / "remote.git"
        self.work = tmp / "work"
        subprocess.run(["git", "init", "-q", "--bare", str(self.bare)], check=True)
        subprocess.run(["git", "init", "-q", "-b", "main", str(self.work)], check=True)
        git(self.work, "remote", "add", "origin", str(self.bare))

    def publish(self, production: str, canary: tuple[str, float] | None = None, note: str = "") -> None:
        text = (
            "version: 1\nmodels:\n  policy:\n    path: models/policy\n"
            f"    stages:\n      production: {production}\n"
        )
        if canary:
            text += f"    canary:\n      version: {canary[0]}\n      traffic: {canary[1]}\n"
        (self.work / "models.yaml").write_text(f"# {note}\n{text}")
        git(self.work, "add", "models.yaml")
        git(self.work, "commit", "-q", "-m", f"production {production}")
        git(self.work, "push", "-q", "origin", "HEAD:refs/heads/main")


def test_sync_keeps_saying_why_a_wanted_version_is_not_served(tmp_path):
    remote = ManifestRemote(tmp_path)
    agent = FakeAgent(
        tmp_path / "cache", {V2: DigestMismatch("policy.pt", "a" * 32, "b" * 32)}, str(remote.bare)
    )
    remote.publish(V1)
    agent.sync_once()
    s = agent.slots["policy"]
    assert s.production.version == V1 and s.last_error is None
    assert health_report(agent, ServeOptions())["status"] == "ok"

    remote.publish(V2)
    for _ in range(3):  # rejected once, then not retried; every later poll still says why
        agent.sync_once()
        assert s.production.version == V1 and s.wanted_production == V2
        assert s.last_error and V2 in s.last_error and "md5" in s.last_error
        h = health_report(agent, ServeOptions())
        assert h["status"] == "degraded" and h["last_error"] is None  # the sync itself is fine
    assert agent.loads == [V1, V2]

    remote.publish(V3)
    agent.sync_once()
    assert s.production.version == V3 and s.last_error is None
    assert health_report(agent, ServeOptions())["status"] == "ok"


def test_sync_failures_are_counted_and_recovered_from(tmp_path):
    remote = ManifestRemote(tmp_path)
    agent = FakeAgent(tmp_path / "cache", repo=str(remote.bare))
    remote.publish(V1)
    agent.sync_once()
    away = remote.bare.with_name("away.git")
    remote.bare.rename(away)
    for n in (1, 2):
        with pytest.raises(GitregError):
            agent.sync_once()
        assert agent.state.failures == n and agent.state.last_error
    assert agent.slots["policy"].production.version == V1  # still serving
    assert health_report(agent, ServeOptions())["status"] == "degraded"
    text = client(agent).get("/metrics").text
    assert "gitreg_sync_failures_total 2.0" in text
    away.rename(remote.bare)
    remote.publish(V2)
    agent.sync_once()
    assert agent.state.failures == 0 and agent.state.last_error is None
    assert agent.slots["policy"].production.version == V2


def test_sync_does_not_retake_a_fallen_back_version_until_its_model_entry_changes(tmp_path):
    remote = ManifestRemote(tmp_path)
    agent = FakeAgent(tmp_path / "cache", repo=str(remote.bare))
    t = Thresholds(max_error_rate=0.1, max_p99_ms=1000, min_requests=3, window=10)
    agent.config.thresholds = t
    remote.publish(V1)
    agent.sync_once()
    remote.publish(V2)
    agent.sync_once()
    s = agent.slots["policy"]
    for _ in range(3):
        s.record(s.production, False, 0.01)
    assert s.production.version == V1
    for _ in range(3):
        agent.sync_once()
        assert s.production.version == V1
        assert s.last_error and V2 in s.last_error and "fell back" in s.last_error
    assert agent.loads == [V1, V2]
    remote.publish(V2, note="an unrelated edit: a comment, the same entry")
    agent.sync_once()
    assert s.production.version == V1 and agent.loads == [V1, V2]  # not re-deployed by accident
    remote.publish(V2, canary=(V1, 5), note="the model's entry changed: try again")
    agent.sync_once()
    assert s.production.version == V2 and agent.loads[:3] == [V1, V2, V2]


def info_samples(agent: Agent, name: str) -> set[tuple[tuple[str, str], ...]]:
    """The label sets of the samples of one info metric (value 1) on the agent's registry."""
    return {
        tuple(sorted(sample.labels.items()))
        for family in agent.metrics.registry.collect()
        for sample in family.samples
        if sample.name == name and sample.value == 1
    }


def test_sync_publishes_wanted_and_refused_versions_apart_from_fallbacks(tmp_path):
    remote = ManifestRemote(tmp_path)
    agent = FakeAgent(
        tmp_path / "cache", {V2: DigestMismatch("policy.pt", "a" * 32, "b" * 32)}, str(remote.bare)
    )
    agent.config.thresholds = Thresholds(max_error_rate=0.1, max_p99_ms=1000, min_requests=3, window=10)
    wanted = lambda: info_samples(agent, "gitreg_wanted_version_info")  # noqa: E731
    refused = lambda: info_samples(agent, "gitreg_rejected_version_info")  # noqa: E731
    assert "gitreg_fallbacks_total{" not in client(agent).get("/metrics").text  # no model yet
    remote.publish(V1)
    agent.sync_once()
    assert wanted() == {(("model", "policy"), ("role", "production"), ("version", V1))}
    assert refused() == set()
    text = client(agent).get("/metrics").text  # at 0 before any fallback: the first is an increase
    for role in ("production", "canary"):
        assert f'gitreg_fallbacks_total{{model="policy",role="{role}"}} 0.0' in text

    remote.publish(V1, canary=(V2, 10))  # the canary is refused: wanted, not served
    agent.sync_once()
    assert wanted() == {
        (("model", "policy"), ("role", "production"), ("version", V1)),
        (("model", "policy"), ("role", "canary"), ("version", V2)),
    }
    assert refused() == {(("model", "policy"), ("version", V2))}
    served = info_samples(agent, "gitreg_served_version_info")
    assert wanted() - served == {(("model", "policy"), ("role", "canary"), ("version", V2))}

    del agent.failures[V2]
    remote.publish(V3, canary=(V2, 10))  # the entry changed: V2 is tried again, and taken
    agent.sync_once()
    assert refused() == set() and wanted() <= info_samples(agent, "gitreg_served_version_info")
    s = agent.slots["policy"]
    for _ in range(3):  # V3 falls back to V1: rejected in /health, but not refused at load
        s.record(s.production, False, 0.01)
    assert s.production.version == V1 and V3 in s.rejected
    agent.sync_once()
    assert refused() == set()
    assert (("model", "policy"), ("role", "production"), ("version", V3)) in wanted()
    assert (("model", "policy"), ("role", "production"), ("version", V3)) not in info_samples(
        agent, "gitreg_served_version_info"
    )


# -- HTTP endpoints ---------------------------------------------------------------------------------
def make_agent(tmp: Path, *versions: Served, canary: Served | None = None, traffic: float = 0) -> Agent:
    agent = Agent(AgentConfig(repo="https://user:pw@git.example.com/reg.git", cache=tmp, seed=1))
    if versions or canary is not None:
        s = agent._slot("policy")
        for v in versions:
            s.swap_production(v)
        if canary is not None:
            s.set_canary(canary, traffic)
        s.wanted_production = s.production.version if s.production else None
        s.wanted_canary = canary.version if canary else None
        agent._publish(s)
        agent.state.last_sync = agent.state.last_attempt = 1.0e9
        agent.state.commit = "c" * 40
    return agent


def client(agent: Agent, **opts: Any) -> TestClient:
    return TestClient(
        create_app(agent, ServeOptions(**opts), manage_agent=False), raise_server_exceptions=False
    )


def test_predict_answers_with_model_and_version(tmp_path):
    c = client(make_agent(tmp_path, served(V1)))
    r = c.post("/predict", json={"inputs": [[1, 2, 3, 4], [0, 0, 0, 1]]})
    assert r.status_code == 200
    assert r.json() == {"outputs": [[10.0], [1.0]], "model": "policy", "version": V1}
    r = c.post("/models/policy/predict", json={"inputs": [[1, 1, 1, 1]]})
    assert r.status_code == 200 and r.json()["version"] == V1
    r = c.post("/models/other/predict", json={"inputs": [[1, 1, 1, 1]]})
    assert r.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": [[1, 2, 3]]},
        {"inputs": [[1, 2, 3, 4, 5]]},
        {"inputs": [["a", "b", "c", "d"]]},
        {"inputs": [[None, 1, 2, 3]]},
        {"inputs": [[True, 1, 2, 3]]},
        {"inputs": [[1, 2, 3, 4]] * 5},  # max_batch=4
        {"inputs": []},
        {"inputs": "1,2,3,4"},
        {"inputs": {"a": 1}},
        {"outputs": [[1, 2, 3, 4]]},
        [1, 2, 3, 4],
        {"inputs": [[[1, 2, 3, 4]]]},
    ],
)
def test_bad_inputs_are_422_never_500(tmp_path, body):
    agent = make_agent(tmp_path, served(V1))
    c = client(agent, max_batch=4)
    r = c.post("/predict", json=body)
    assert r.status_code == 422, r.text
    assert "detail" in r.json()


def test_non_json_and_non_finite_bodies_are_422(tmp_path):
    c = client(make_agent(tmp_path, served(V1)))
    for raw in (
        b"not json",
        b"",
        b'{"inputs": [[NaN, 1, 2, 3]]}',
        b'{"inputs": [[Infinity, 1, 2, 3]]}',
        b'{"inputs": [[1e308, 1, 2, 3]]}',
        b'{"inputs": [[1' + b"0" * 400 + b", 1, 2, 3]]}",  # an int no float holds
    ):
        r = c.post("/predict", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, (raw, r.status_code, r.text)


def test_a_json_body_is_json_whatever_its_content_type(tmp_path):
    c = client(make_agent(tmp_path, served(V1)))
    raw = json.dumps({"inputs": [[1, 2, 3, 4]]}).encode()
    for content_type in (
        "application/json",
        "application/json; charset=utf-8",
        "Application/vnd.api+json",
        "text/plain",
        "application/x-www-form-urlencoded",  # what curl -d sends
    ):
        r = c.post("/predict", content=raw, headers={"content-type": content_type})
        assert r.status_code == 200, (content_type, r.text)
    assert c.post("/predict", content=raw).status_code == 200  # no content type at all
    r = c.post("/predict", content=b"inputs=1", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 422 and "JSON" in r.json()["detail"]


def test_rejected_inputs_are_counted_and_not_judged(tmp_path):
    agent = make_agent(tmp_path, served(V1))
    c = client(agent)
    assert c.post("/predict", json={"inputs": [[1, 2]]}).status_code == 422
    text = c.get("/metrics").text
    assert 'gitreg_requests_total{model="policy",outcome="rejected",version="' + V1 + '"} 1.0' in text
    assert agent.slots["policy"].stats[V1].total == 0


def test_bearer_token_guards_predict_only(tmp_path):
    c = client(make_agent(tmp_path, served(V1)), token=TOKEN)
    body = {"inputs": [[1, 2, 3, 4]]}
    assert c.post("/predict", json=body).status_code == 401
    r = c.post("/predict", json=body, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert c.post("/predict", json=body, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert c.post("/predict", json=body, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    r = c.post("/models/policy/predict", json=body, headers={"Authorization": f"bearer {TOKEN}"})
    assert r.status_code == 200
    assert c.post("/models/policy/predict", json=body).status_code == 401
    for path in ("/health", "/ready", "/models", "/metrics"):
        assert c.get(path).status_code == 200, path


def test_webhook_without_a_secret_schedules_a_sync(tmp_path):
    agent = make_agent(tmp_path, served(V1))
    c = client(agent)
    assert not agent._wake.is_set()
    r = c.post("/hooks/git", content=b"{}")
    assert r.status_code == 202 and r.json() == {"sync": "scheduled"}
    assert agent._wake.is_set()


def github_signature(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_webhook_checks_github_and_gitlab_signatures(tmp_path):
    agent = make_agent(tmp_path, served(V1))
    c = client(agent, webhook_secret=SECRET)
    body = json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()

    def post(headers: dict[str, str], content: bytes = body) -> int:
        agent._wake.clear()
        r = c.post("/hooks/git", content=content, headers={"content-type": "application/json", **headers})
        assert agent._wake.is_set() == (r.status_code == 202)
        return r.status_code

    assert post({}) == 401
    assert post({"X-Hub-Signature-256": github_signature(body)}) == 202
    assert post({"X-Hub-Signature-256": github_signature(body, "other")}) == 401
    assert post({"X-Hub-Signature-256": github_signature(body)}, body + b" ") == 401  # body altered
    assert post({"X-Hub-Signature-256": github_signature(body)[7:]}) == 401  # no sha256= prefix
    assert post({"X-Hub-Signature": "sha1=" + hmac.new(SECRET.encode(), body, "sha1").hexdigest()}) == 401
    assert post({"X-Gitlab-Token": SECRET}) == 202
    assert post({"X-Gitlab-Token": SECRET + "x"}) == 401
    assert post({"X-Gitlab-Token": ""}) == 401


def test_webhook_body_size_is_limited(tmp_path):
    agent = make_agent(tmp_path, served(V1))
    c = client(agent, webhook_secret=SECRET)
    big = b"x" * (MAX_WEBHOOK_BYTES + 1)
    r = c.post("/hooks/git", content=big, headers={"X-Hub-Signature-256": github_signature(big)})
    assert r.status_code == 413

    def chunks():  # no content-length: the stream itself is counted
        for _ in range(MAX_WEBHOOK_BYTES // 65536 + 2):
            yield b"y" * 65536

    r = c.post("/hooks/git", content=chunks(), headers={"X-Gitlab-Token": SECRET})
    assert r.status_code == 413
    assert not agent._wake.is_set()


def test_ready_turns_200_once_every_followed_model_serves(tmp_path):
    agent = make_agent(tmp_path)
    c = client(agent)
    assert c.get("/ready").status_code == 503  # nothing followed yet
    agent._slot("policy")
    agent._slot("ranker")
    r = c.get("/ready")
    assert r.status_code == 503 and sorted(r.json()["waiting"]) == ["policy", "ranker"]
    assert c.post("/predict", json={"inputs": [[1, 2, 3, 4]]}).status_code == 503
    agent.slots["policy"].swap_production(served(V1))
    r = c.get("/ready")
    assert r.status_code == 503 and r.json()["waiting"] == ["ranker"]
    agent.slots["ranker"].set_canary(served(V2, model="ranker"), 10)  # a canary alone serves too
    assert c.get("/ready").status_code == 200


def test_health_ok_then_degraded_with_per_model_detail(tmp_path):
    agent = make_agent(tmp_path, served(V1))
    c = client(agent)
    h = c.get("/health").json()
    assert h["status"] == "ok"
    assert h["repo"] == "https://***@git.example.com/reg.git"  # no credentials on /health
    assert h["models"]["policy"]["served"] == V1 and h["models"]["policy"]["wanted"] == V1
    s = agent.slots["policy"]
    s.wanted_production = V2
    s.last_error = f"{V2} is not served: policy.pt: md5 mismatch"
    s.rejected[V2] = "policy.pt: md5 mismatch"
    h = c.get("/health").json()
    assert h["status"] == "degraded"
    m = h["models"]["policy"]
    assert (m["served"], m["wanted"]) == (V1, V2)
    assert V2 in m["last_error"] and V2 in m["rejected"]
    s.wanted_production, s.last_error, s.rejected = V1, None, {}
    agent.state.last_error = "git fetch failed: remote not found"
    agent.state.failures = 2
    h = c.get("/health").json()
    assert h["status"] == "degraded" and h["last_error"].startswith("git fetch") and h["sync_failures"] == 2
    agent.state.last_error = None
    assert c.get("/health").json()["status"] == "ok"
    c2 = client(agent, stale_after=60.0)  # no successful sync for too long
    assert c2.get("/health").json()["status"] == "degraded"


def test_models_lists_served_versions_and_metadata(tmp_path):
    agent = make_agent(tmp_path, served(V1), served(V2), canary=served(V3), traffic=15)
    m = client(agent).get("/models").json()["policy"]
    assert m["production"]["version"] == V2
    assert m["previous"]["version"] == V1
    assert m["canary"]["version"] == V3 and m["canary"]["traffic"] == 15
    assert m["production"]["metadata"] == {"algo": "DQN"}
    assert m["production"]["loaded_at"].endswith("+00:00")


def test_metrics_expose_requests_latency_served_versions_and_failures(tmp_path):
    agent = make_agent(tmp_path, served(V1), served(V2), canary=served(V3), traffic=50)
    c = client(agent)
    for _ in range(10):
        assert c.post("/predict", json={"inputs": [[1, 2, 3, 4]]}).status_code == 200
    agent.metrics.sync_failures.inc()
    r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    ok = {
        v: float(line.rsplit(" ", 1)[1])
        for v in (V2, V3)
        for line in text.splitlines()
        if line.startswith(f'gitreg_requests_total{{model="policy",outcome="ok",version="{v}"}}')
    }
    assert sum(ok.values()) == 10
    assert f'gitreg_request_latency_seconds_count{{model="policy",version="{V2}"}}' in text
    assert f'gitreg_served_version_info{{model="policy",role="production",version="{V2}"}} 1.0' in text
    assert f'gitreg_served_version_info{{model="policy",role="previous",version="{V1}"}} 1.0' in text
    assert f'gitreg_served_version_info{{model="policy",role="canary",version="{V3}"}} 1.0' in text
    assert "gitreg_sync_failures_total 1.0" in text
    for name in ("gitreg_swaps_total", "gitreg_fallbacks_total", "gitreg_load_failures_total"):
        assert f"# TYPE {name} counter" in text
    assert "gitreg_last_sync_timestamp_seconds" in text


def test_a_failing_new_version_falls_back_over_http(tmp_path):
    agent = make_agent(tmp_path, served(V1), served(V2, fail=True))
    s = agent.slots["policy"]
    s.thresholds = Thresholds(max_error_rate=0.2, max_p99_ms=1000, min_requests=5, window=20)
    s.wanted_production = V2
    c = client(agent)
    codes = [c.post("/predict", json={"inputs": [[1, 2, 3, 4]]}).status_code for _ in range(5)]
    assert codes == [500] * 5  # a model error is the server's fault, reported as such
    r = c.post("/predict", json={"inputs": [[1, 2, 3, 4]]})
    assert r.status_code == 200 and r.json()["version"] == V1
    h = c.get("/health").json()
    assert h["status"] == "degraded"
    m = h["models"]["policy"]
    assert m["served"] == V1 and m["wanted"] == V2
    assert [(f["version"], f["role"], f["restored"]) for f in m["fallbacks"]] == [(V2, "production", V1)]
    assert V2 in m["rejected"]
    text = c.get("/metrics").text
    assert 'gitreg_fallbacks_total{model="policy",role="production"} 1.0' in text
    assert f'gitreg_requests_total{{model="policy",outcome="error",version="{V2}"}} 5.0' in text
    assert f'gitreg_served_version_info{{model="policy",role="production",version="{V1}"}} 1.0' in text
    served_lines = [line for line in text.splitlines() if line.startswith("gitreg_served_version_info{")]
    assert served_lines and not [line for line in served_lines if f'role="production",version="{V2}"' in line]
    # still wanted (models.yaml says V2), so a served-is-not-wanted alert can see the difference
    assert f'gitreg_wanted_version_info{{model="policy",role="production",version="{V2}"}} 1.0' in text


def on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def recording(version: str, seconds: float = 0.0) -> tuple[Served, list[bool]]:
    """A version that notes, per call, whether it ran on the event loop (else: a worker thread)."""
    calls: list[bool] = []

    def predict(inputs: Any) -> list[Any]:
        calls.append(on_event_loop())
        if seconds:
            time.sleep(seconds)  # stands for a slow forward pass
        return [[summing(row)] for row in inputs]

    return Served(model="policy", version=version, commit="c" * 40, predict=predict, input_shape=[4]), calls


def test_quick_versions_run_on_the_event_loop_and_slow_ones_in_a_worker(tmp_path, monkeypatch):
    import gitreg.serve.app as serve_app

    # a generous bar for "quick": a pass of the fake model preempted on a busy machine still is
    monkeypatch.setattr(serve_app, "INLINE_SECONDS", 0.05)
    quick, quick_calls = recording(V1)
    agent = make_agent(tmp_path, quick)
    c = client(agent)
    for _ in range(4):
        r = c.post("/predict", json={"inputs": [[1, 2, 3, 4]]})
        assert r.status_code == 200 and r.json() == {"outputs": [[10.0]], "model": "policy", "version": V1}
    assert quick_calls == [False, True, True, True]  # the first pass, of unknown length, in a worker
    assert quick.predict_seconds is not None and quick.predict_seconds < 0.05

    quick.predict_seconds = 0.01  # per observation: a batch of 10 is expected to take 0.1 s
    quick_calls.clear()
    assert c.post("/predict", json={"inputs": [[1, 2, 3, 4]] * 10}).status_code == 200
    assert c.post("/predict", json={"inputs": [[1, 2, 3, 4]] * 2}).status_code == 200
    assert quick_calls == [False, True]

    monkeypatch.undo()  # the real bar: a 2 ms pass is not quick
    assert serve_app.INLINE_SECONDS < 0.002
    slow, slow_calls = recording(V2, seconds=0.002)
    agent.slots["policy"].swap_production(slow)
    for _ in range(3):
        assert c.post("/predict", json={"inputs": [[1, 2, 3, 4]]}).json()["version"] == V2
    assert slow_calls == [False, False, False]
    text = c.get("/metrics").text
    for version, n in ((V1, 6), (V2, 3)):
        assert f'gitreg_requests_total{{model="policy",outcome="ok",version="{version}"}} {n}.0' in text
        assert f'gitreg_request_latency_seconds_count{{model="policy",version="{version}"}} {n}.0' in text
        assert agent.slots["policy"].stats[version].total == n


def test_non_finite_outputs_of_a_custom_loader_are_null_as_before(tmp_path):
    def predict(inputs: Any) -> list[Any]:
        return [[math.nan, math.inf, 1.5] for _ in inputs]

    v = Served(model="policy", version=V1, commit="c" * 40, predict=predict, input_shape=[4])
    c = client(make_agent(tmp_path, v))
    for _ in range(2):  # in a worker, then on the event loop
        r = c.post("/predict", json={"inputs": [[1, 2, 3, 4]]})
        assert r.status_code == 200
        assert r.json() == {"outputs": [[None, None, 1.5]], "model": "policy", "version": V1}


def test_openapi_documents_predict(tmp_path):
    spec = client(make_agent(tmp_path, served(V1))).get("/openapi.json").json()
    for path in ("/predict", "/models/{model}/predict"):
        op = spec["paths"][path]["post"]
        body = op["requestBody"]["content"]["application/json"]["schema"]
        assert body["required"] == ["inputs"] and body["properties"]["inputs"]["type"] == "array"
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": "#/components/schemas/PredictResponse"}
        assert {"401", "404", "422", "500", "503"} <= set(op["responses"])
        assert "authorization" in [p["name"] for p in op["parameters"]]
    assert spec["components"]["schemas"]["PredictResponse"]["required"] == ["outputs", "model", "version"]
    v2 = spec["paths"]["/v2/models/{model}/versions/{version}/infer"]["post"]
    body = v2["requestBody"]["content"]["application/json"]["schema"]
    assert "$ref" not in json.dumps(body)  # no #/$defs/... pointing at nothing in the document
    assert body["properties"]["inputs"]["items"]["required"] == ["name", "shape", "datatype", "data"]
    assert v2["responses"]["404"]["content"]["application/json"]["schema"]["properties"] == {
        "error": {"type": "string"}
    }
    for path in ("/invocations", "/v2", "/v2/health/live", "/v2/health/ready", "/livez", "/readyz", "/ping"):
        assert path in spec["paths"], path
    refs = {m for m in re.findall(r'"\$ref": "#/components/schemas/(\w+)"', json.dumps(spec))}
    assert refs <= set(spec["components"]["schemas"])  # every reference resolves


def test_v2_and_mlflow_errors_are_their_protocols_and_one_line(tmp_path):
    c = client(make_agent(tmp_path, served(V1)))
    tensor = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    r = c.post("/v2/models/policy/infer", json={"id": "a", "inputs": [tensor]})
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [10.0] and r.json()["id"] == "a"
    r = c.post("/v2/models/policy/infer", json={"inputs": [{**tensor, "datatype": "BOOL"}]})
    assert r.status_code == 422 and "BOOL" in r.json()["error"]
    r = c.post("/v2/models/policy/infer", json={"inputs": [tensor], "outputs": [{"name": "logits"}]})
    assert r.status_code == 422 and "'output'" in r.json()["error"]
    assert c.get("/v2/nothing").json() == {"error": "Not Found"}
    r = c.post("/invocations", json={"instances": "x"})
    assert r.status_code == 422 and r.json()["error_code"] == "BAD_REQUEST"
    empty = client(make_agent(tmp_path))
    assert empty.get("/v2/models/policy/ready").status_code == 404
    assert empty.get("/v2/health/ready").status_code == 503 and empty.get("/ping").status_code == 503


def test_canary_responses_name_their_version(tmp_path):
    agent = make_agent(tmp_path, served(V1), canary=served(V2), traffic=30)
    c = client(agent)
    versions = [c.post("/predict", json={"inputs": [[1, 2, 3, 4]]}).json()["version"] for _ in range(400)]
    assert set(versions) == {V1, V2}
    assert abs(versions.count(V2) / 400 - 0.30) < 0.08


def test_redact_hides_credentials():
    assert redact("https://user:tok@github.com/a/b.git") == "https://***@github.com/a/b.git"
    assert redact("/srv/git/reg.git") == "/srv/git/reg.git"
    assert redact("git@github.com:a/b.git") == "git@github.com:a/b.git"


def test_torch_policy_learns_its_input_width_when_the_metadata_does_not_say(tmp_path):
    torch = pytest.importorskip("torch")
    from gitreg.runtime import TorchPolicy

    class Scale(torch.nn.Module):  # element-wise against a weight of 5: width 1 broadcasts too
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(5))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.w

    mlp = torch.nn.Sequential(torch.nn.Linear(6, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    cases = [(mlp, None, [6]), (Scale(), None, [5]), (torch.nn.ReLU(), None, None), (mlp, [6], [6])]
    for i, (module, declared, learned) in enumerate(cases):
        path = tmp_path / f"p{i}.pt"
        torch.jit.script(module).save(str(path))
        policy = TorchPolicy(path, declared)
        assert policy.learn_input_shape() == learned and policy.input_shape == learned, i


@pytest.mark.parametrize(
    ("inputs", "shape", "batch", "single"),
    [
        ([0.1, 0.2, 0.3, 0.4], [4], [[0.1, 0.2, 0.3, 0.4]], True),
        ([[0.1, 0.2, 0.3, 0.4]], [4], [[0.1, 0.2, 0.3, 0.4]], False),
        ([0.1, 0.2, 0.3], [4], [[0.1, 0.2, 0.3]], True),  # then a 422 naming [4]
        ([[1, 2], [3, 4]], [2, 2], [[[1, 2], [3, 4]]], True),
        ([1.0, 2.0], None, [1.0, 2.0], False),  # no known shape: nothing guessed
        ([], [4], [], False),
    ],
)
def test_one_observation_on_its_own_is_a_batch_of_one(inputs, shape, batch, single):
    from gitreg.serve.runtime import as_batch

    assert as_batch(inputs, shape) == (batch, single)


def test_a_failing_model_is_a_one_line_500(tmp_path):
    def predict(inputs: Any) -> list[Any]:
        raise RuntimeError(
            "The following operation failed in the TorchScript interpreter.\n"
            "Traceback of TorchScript (most recent call last):\n"
            '  File "code/__torch__.py", line 12, in forward\n'
            "RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x3 and 4x16)\n"
        )

    v = Served(model="policy", version=V1, commit="c" * 40, predict=predict, input_shape=[4])
    r = client(make_agent(tmp_path, v)).post("/predict", json={"inputs": [[1, 2, 3, 4]]})
    assert r.status_code == 500
    assert r.json()["detail"] == (
        f"{V1} failed on these inputs: RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x3 and 4x16)"
    )
