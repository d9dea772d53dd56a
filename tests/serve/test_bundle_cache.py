"""The deploy agent's bundle cache on a real registry (bare Git remote, folder DVC remote), without
an HTTP server or torch in this process: a corrupted cached file is re-pulled before it is loaded,
and --cache-max-bytes evicts unserved bundles first, refuses what does not fit (the served version
keeps serving, /health says why) and recovers once room frees up."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from gitreg.errors import GitregError
from gitreg.serve.agent import Agent, AgentConfig
from gitreg.serve.app import ServeOptions, health_report
from gitreg.testing.repos import git

V1 = "v2025-07-01--10h00"
V2 = "v2025-07-02--10h00"
V3 = "v2025-07-03--10h00"


class FakePolicy:
    def __init__(self, path: Path) -> None:
        self.md5 = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()

    def predict(self, inputs: Any) -> list[Any]:
        return [[0.0] for _ in inputs]


def agent_for(remote: Path, cache: Path, **kw: Any) -> tuple[Agent, list[FakePolicy]]:
    loaded: list[FakePolicy] = []

    def loader(path: Path, meta: Any) -> FakePolicy:
        loaded.append(FakePolicy(path))
        return loaded[-1]

    config = AgentConfig(repo=str(remote), cache=cache, seed=1, smoke_test=False, **kw)
    return Agent(config, loader=loader), loaded


def promote(registry: Any, version: str, canary: float | None = None) -> None:
    if canary is None:
        registry.promote(version, "production", direct=True, push=True, force=True)
    else:
        registry.promote(version, None, canary=canary, direct=True, push=True, force=True)


def size_of(registry: Any, version: str) -> int:
    return sum(f.size for f in registry.get(version).files)


def policy_md5(registry: Any, version: str) -> str:
    return next(f.md5 for f in registry.get(version).files if f.path == "policy.pt")


@pytest.fixture
def three(registry: Any, make_bundle: Any) -> Any:
    for v, seed in ((V1, 1), (V2, 2), (V3, 3)):
        registry.register(make_bundle(seed), "policy", version=v, push=True)
    return registry


def bundles(cache: Path) -> set[str]:
    return {p.name for p in (cache / "bundles").iterdir() if not p.name.startswith(".")}


def test_a_corrupted_cached_file_is_pulled_again_before_it_is_loaded(three, bare_remote, tmp_path):
    registry, cache = three, tmp_path / "cache"
    promote(registry, V1)
    agent, loaded = agent_for(bare_remote, cache)
    agent.sync_once()
    assert agent.slots["policy"].production.version == V1
    good = policy_md5(registry, V1)
    assert loaded[-1].md5 == good
    (cached,) = (cache / "bundles").glob("*/policy.pt")
    cached.write_bytes(b"\x00bit rot\x00" + cached.read_bytes()[9:])  # same size, other bytes

    # a restart on the same cache: the corrupted copy is never loaded
    fresh, fresh_loaded = agent_for(bare_remote, cache)
    fresh.sync_once()
    assert fresh.slots["policy"].production.version == V1
    assert [p.md5 for p in fresh_loaded] == [good]
    assert hashlib.md5(cached.read_bytes(), usedforsecurity=False).hexdigest() == good

    # promoted away (twice: V1 is not even the previous one) and back: verified again
    cached.write_bytes(b"garbage")
    for v in (V2, V3, V1):
        promote(registry, v)
        agent.sync_once()
        assert agent.slots["policy"].production.version == v
    assert loaded[-1].md5 == good
    assert hashlib.md5(cached.read_bytes(), usedforsecurity=False).hexdigest() == good
    assert health_report(agent, ServeOptions())["status"] == "ok"


def test_a_bundle_larger_than_the_cache_is_refused_and_the_old_one_keeps_serving(
    three, bare_remote, tmp_path
):
    registry, cache = three, tmp_path / "cache"
    promote(registry, V1)
    agent, _ = agent_for(bare_remote, cache, cache_max_bytes=size_of(registry, V1))
    agent.sync_once()
    before = bundles(cache)
    promote(registry, V2)
    agent.config.cache_max_bytes = size_of(registry, V2) - 1  # V2 alone does not fit
    agent.sync_once()  # a refused bundle is not a failed sync: the remote is fine
    slot = agent.slots["policy"]
    assert slot.production.version == V1 and V2 in slot.rejected
    assert "--cache-max-bytes" in slot.rejected[V2]
    h = health_report(agent, ServeOptions())
    assert h["status"] == "degraded"
    assert (h["models"]["policy"]["served"], h["models"]["policy"]["wanted"]) == (V1, V2)
    assert "--cache-max-bytes" in h["models"]["policy"]["last_error"]
    assert bundles(cache) == before  # nothing pulled, nothing evicted
    assert not list((cache / "bundles").glob(".pull-*"))


def test_unserved_bundles_are_evicted_least_recently_used_first(three, bare_remote, tmp_path):
    registry, cache = three, tmp_path / "cache"
    limit = max(size_of(registry, v) for v in (V1, V2, V3)) * 2 + 16  # room for two bundles
    promote(registry, V1)
    agent, _ = agent_for(bare_remote, cache, cache_max_bytes=limit)
    agent.sync_once()
    dirs: dict[str, str] = {V1: next(iter(bundles(cache)))}
    promote(registry, V2)
    agent.sync_once()
    dirs[V2] = next(iter(bundles(cache) - {dirs[V1]}))
    promote(registry, V3)  # V1 is only the previous version now (in memory): its folder goes
    agent.sync_once()
    slot = agent.slots["policy"]
    assert (slot.production.version, slot.previous.version) == (V3, V2)
    assert dirs[V1] not in bundles(cache) and dirs[V2] in bundles(cache) and len(bundles(cache)) == 2
    assert sum(p.stat().st_size for p in (cache / "bundles").rglob("*") if p.is_file()) <= limit
    promote(registry, V2)  # instant rollback: no disk needed
    agent.sync_once()
    assert slot.production.version == V2
    assert health_report(agent, ServeOptions())["status"] == "ok"


def test_a_full_cache_of_served_bundles_refuses_then_recovers_when_room_frees_up(
    three, bare_remote, tmp_path
):
    registry, cache = three, tmp_path / "cache"
    limit = max(size_of(registry, v) for v in (V1, V2, V3)) * 2 + 16
    promote(registry, V1)
    promote(registry, V2, canary=10)
    agent, _ = agent_for(bare_remote, cache, cache_max_bytes=limit)
    agent.sync_once()
    slot = agent.slots["policy"]
    assert (slot.production.version, slot.canary.version) == (V1, V2)

    promote(registry, V3)  # production V1 and canary V2 fill the cache: V3 cannot come in
    with pytest.raises(GitregError, match="cache"):
        agent.sync_once()
    assert (slot.production.version, slot.canary.version) == (V1, V2)
    assert V3 not in slot.rejected  # retried on every sync
    h = health_report(agent, ServeOptions())
    assert h["status"] == "degraded"
    assert "--cache-max-bytes" in h["models"]["policy"]["last_error"]
    assert len(bundles(cache)) == 2

    _drop_canary(registry)  # the operator ends the canary: its room frees up
    agent.sync_once()
    assert slot.production.version == V3 and slot.canary is None
    assert health_report(agent, ServeOptions())["status"] == "ok"


def _drop_canary(registry: Any) -> None:
    from gitreg import manifest as mf

    m = mf.load(registry.manifest_path)
    m.set_canary("policy", None)
    m.save(registry.manifest_path)
    git(registry.root, "commit", "-qam", "end the canary")
    git(registry.root, "push", "-q", "origin", "HEAD:main")


def test_unfinished_pulls_count_in_the_cache_size_and_are_cleaned_at_start(tmp_path):
    from gitreg.store.cache import BundleCache

    cache = BundleCache(tmp_path / "bundles")
    assert cache.used_bytes() == 0 and cache.clean_stale() == 0  # no folder yet
    (tmp_path / "bundles" / "k1").mkdir(parents=True)
    (tmp_path / "bundles" / "k1" / "policy.pt").write_bytes(b"a" * 1000)
    stale = tmp_path / "bundles" / ".pull-x1" / "bundle"
    stale.mkdir(parents=True)
    (stale / "policy.pt").write_bytes(b"b" * 500)
    assert cache.used_bytes() == 1500  # what --cache-max-bytes holds the folder to
    assert [p.name for p in cache.bundles()] == ["k1"]  # never evicted or served as a bundle
    assert cache.clean_stale() == 500
    assert cache.used_bytes() == 1000 and not stale.parent.exists()


def test_a_forged_tag_copying_a_cached_versions_record_is_refused_warm_and_cold(three, bare_remote, tmp_path):
    """A tag whose message copies V1's file list, on a commit without V1's folder: a warm agent
    (V1's bytes cached under that very key) refuses it as a cold one does."""
    from gitreg import manifest as mf

    registry = three
    promote(registry, V1)
    warm, _ = agent_for(bare_remote, tmp_path / "warm")
    warm.sync_once()
    assert warm.slots["policy"].production.version == V1
    v1_tag = next(t for t in git(registry.root, "tag", "-l").split() if t.endswith(V1))
    forged_version = "v2025-07-09--10h00"
    message = git(registry.root, "tag", "-l", "--format=%(contents)", v1_tag).replace(V1, forged_version)
    root_commit = git(registry.root, "rev-list", "--max-parents=0", "HEAD").split()[0]
    forged_tag = v1_tag.replace(V1, forged_version)
    git(registry.root, "tag", "-a", forged_tag, "-m", message, root_commit)
    git(registry.root, "push", "-q", "origin", forged_tag)
    m = mf.load(registry.manifest_path)
    m.set_stage("policy", "production", forged_version)
    m.save(registry.manifest_path)
    git(registry.root, "commit", "-qam", "promote a forged tag")
    git(registry.root, "push", "-q", "origin", "HEAD:main")

    cold, _ = agent_for(bare_remote, tmp_path / "cold")
    for agent in (warm, cold):
        try:
            agent.sync_once()
        except GitregError:
            pass  # a cold agent has nothing to serve meanwhile
        slot = agent.slots["policy"]
        assert slot.production is None or slot.production.version == V1
        assert forged_version in slot.rejected, slot.last_error
        assert "has no models/policy/" in slot.rejected[forged_version]
        assert health_report(agent, ServeOptions())["status"] == "degraded"
