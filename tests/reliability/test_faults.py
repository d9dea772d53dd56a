"""Faults in the deploy path, each under load: the real `gitreg serve` (its own process group)
answers a few client threads hammering /predict while S3 goes away mid-pull, the Git remote
becomes unreachable, the cache is too small, a cached object rots, or SIGTERM lands during a
swap. Each time: no request for the version already served fails, /health tells the truth, and
the agent recovers without a restart once the fault clears. Every wait has a deadline."""

from __future__ import annotations

import hashlib
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from gitreg.testing.bundles import ROW, close, expected_outputs, slow_policy_bytes, slow_row
from gitreg.testing.load import Load as HarnessLoad
from gitreg.testing.repos import git
from gitreg.testing.repos import register_pushed as register
from gitreg.testing.server import NO_FALLBACK
from gitreg.testing.server import ServeProcess as Server
from gitreg.testing.server import wait_for as wait_until

pytestmark = pytest.mark.slow

V1 = "v2025-07-01--10h00"
V2 = "v2025-07-02--10h00"
V3 = "v2025-07-03--10h00"


def promote(registry: Any, version: str) -> None:
    registry.promote(version, "production", direct=True, push=True, force=True)


class Hammer(HarnessLoad):
    """The harness's load, paced (5 ms between a client's requests); each answer is
    (started, ended, status, version or the error)."""

    def __init__(self, url: str, threads: int = 3, inputs: Any = ROW) -> None:
        super().__init__(url, clients=threads, inputs=inputs, pause=0.005)

    @property
    def answers(self) -> list[tuple[float, float, int, str]]:
        return [
            (s.start, s.start + s.seconds, s.status, s.version if s.status == 200 else str(s.body))
            for s in self.all()
        ]

    def count(self, version: str) -> int:  # type: ignore[override]
        return sum(1 for s in self.all() if s.status == 200 and s.version == version)

    def failed(self, before: float | None = None) -> list[tuple[float, float, int, str]]:  # type: ignore[override]
        return [a for a in self.answers if a[2] != 200 and (before is None or a[0] < before)]


def assert_none_failed(load: Hammer) -> None:
    failed = load.failed()
    assert load.answers and not failed, f"{len(failed)} of {len(load.answers)} failed: {failed[:3]}"


def bundle_folders(server: Server) -> list[Path]:
    return [p for p in Path(server.proc.args[server.proc.args.index("--cache") + 1]).glob("*/bundles/*")]


# -- (a) S3 goes away mid-pull ---------------------------------------------------------------------
def test_s3_away_mid_pull_under_load(private_moto, bare_remote, make_bundle, serve, tmp_path, clock):
    from gitreg.registry import Registry

    bucket = f"gitreg-{uuid.uuid4().hex[:12]}"
    private_moto.client().create_bucket(Bucket=bucket)
    repo = tmp_path / "s3reg"
    Registry.init(repo, remote=f"s3://{bucket}/reg", endpoint_url=private_moto.endpoint)
    git(repo, "remote", "add", "origin", str(bare_remote))
    registry = Registry(repo, clock=clock)
    register(registry, make_bundle(1), V1)
    promote(registry, V1)
    server = serve(bare_remote, "--poll", "600", *NO_FALLBACK)  # syncs on the webhook (or to retry)

    with Hammer(server.url) as load:
        wait_until(lambda: load.count(V1) >= 20, "answers from V1", 60, server)
        register(registry, make_bundle(2), V2)
        promote(registry, V2)
        private_moto.stop()  # S3 goes away before the agent pulls V2
        assert httpx.post(server.url + "/hooks/git", content=b"{}", timeout=30).status_code == 202
        h = wait_until(
            lambda: (h := server.health())["models"]["policy"]["last_error"] and h,
            "a failed pull",
            120,
            server,
        )
        m = h["models"]["policy"]
        assert h["status"] == "degraded" and (m["served"], m["wanted"]) == (V1, V2), h
        assert "DVC remote" in m["last_error"] and V2 not in m["rejected"], m
        mark = load.count(V1)
        wait_until(lambda: load.count(V1) >= mark + 20, "V1 keeps answering", 60, server)

        private_moto.start()  # back, empty: the bucket and objects return from the DVC cache
        s3 = private_moto.client()
        s3.create_bucket(Bucket=bucket)
        for p in (repo / ".dvc" / "cache" / "files" / "md5").rglob("*"):
            if p.is_file():
                s3.put_object(
                    Bucket=bucket, Key=f"reg/files/md5/{p.parent.name}/{p.name}", Body=p.read_bytes()
                )
        httpx.post(server.url + "/hooks/git", content=b"{}", timeout=30)
        wait_until(lambda: load.count(V2) >= 10, "V2 served from S3", 120, server)
    assert_none_failed(load)
    h = wait_until(lambda: (h := server.health())["status"] == "ok" and h, "healthy again", 60, server)
    assert h["models"]["policy"]["served"] == V2


# -- (b) the Git remote is unreachable -------------------------------------------------------------
def test_git_remote_unreachable_under_load(registry, bare_remote, make_bundle, serve):
    register(registry, make_bundle(1), V1)
    register(registry, make_bundle(2), V2)
    promote(registry, V1)
    server = serve(bare_remote, "--poll", "0.5", *NO_FALLBACK)
    away = bare_remote.with_name("remote-away.git")

    with Hammer(server.url) as load:
        wait_until(lambda: load.count(V1) >= 20, "answers from V1", 60, server)
        bare_remote.rename(away)
        try:
            h = wait_until(
                lambda: (h := server.health())["sync_failures"] >= 2 and h, "failed syncs", 60, server
            )
            assert h["status"] == "degraded" and h["last_error"], h
            assert h["models"]["policy"]["served"] == V1
            assert server.get("/ready").status_code == 200
            mark = load.count(V1)
            wait_until(lambda: load.count(V1) >= mark + 20, "V1 keeps answering", 60, server)
        finally:
            away.rename(bare_remote)
        promote(registry, V2)
        wait_until(lambda: load.count(V2) >= 10, "V2 after the remote returns", 120, server)
    assert_none_failed(load)
    h = wait_until(lambda: (h := server.health())["status"] == "ok" and h, "healthy again", 30, server)
    assert h["sync_failures"] == 0 and h["last_error"] is None


# -- (c) the cache is too small for the new bundle -------------------------------------------------
def test_cache_too_small_for_the_new_bundle_under_load(registry, bare_remote, make_bundle, serve):
    register(registry, make_bundle(1), V1)
    register(registry, make_bundle(2, extra_files={"replay.bin": b"\x01" * 600_000}), V2)  # too big
    register(registry, make_bundle(3), V3)
    promote(registry, V1)
    server = serve(bare_remote, "--poll", "0.5", "--cache-max-bytes", "300000", *NO_FALLBACK)

    with Hammer(server.url) as load:
        wait_until(lambda: load.count(V1) >= 20, "answers from V1", 60, server)
        promote(registry, V2)
        m = wait_until(
            lambda: (m := server.model())["wanted"] == V2 and m["last_error"] and m, "refusal", 60, server
        )
        assert m["served"] == V1 and "--cache-max-bytes" in m["last_error"], m
        assert server.health()["status"] == "degraded"
        mark = load.count(V1)
        wait_until(lambda: load.count(V1) >= mark + 20, "V1 keeps answering", 60, server)
        assert not any((p / "replay.bin").exists() for p in bundle_folders(server))

        promote(registry, V3)  # a bundle that fits: taken without a restart
        wait_until(lambda: load.count(V3) >= 10, "V3 served", 120, server)
    assert_none_failed(load)
    assert wait_until(lambda: server.health()["status"] == "ok", "healthy again", 30, server)
    total = sum(f.stat().st_size for p in bundle_folders(server) for f in p.rglob("*") if f.is_file())
    assert total <= 300_000


# -- (d) a cached object of the served version rots ------------------------------------------------
def test_corrupted_cache_object_is_pulled_again_under_load(registry, bare_remote, make_bundle, serve):
    bundles = {V1: make_bundle(1), V2: make_bundle(2), V3: make_bundle(3)}
    for v, b in bundles.items():
        register(registry, b, v)
    expected = expected_outputs(bundles[V1])
    good = next(f.md5 for f in registry.get(V1).files if f.path == "policy.pt")
    promote(registry, V1)
    server = serve(bare_remote, "--poll", "0.5", *NO_FALLBACK)

    def md5(p: Path) -> str:
        return hashlib.md5(p.read_bytes(), usedforsecurity=False).hexdigest()

    (cached,) = [p / "policy.pt" for p in bundle_folders(server) if md5(p / "policy.pt") == good]
    with Hammer(server.url) as load:
        wait_until(lambda: load.count(V1) >= 20, "answers from V1", 60, server)
        cached.write_bytes(b"\x00rot\x00" + cached.read_bytes()[5:])  # same size, other bytes
        for v in (V2, V3, V1):  # away (V1 is not even the previous one) and back: a real re-load
            promote(registry, v)
            wait_until(lambda v=v: server.model()["served"] == v, f"{v} served", 120, server)
        mark = load.count(V1)
        wait_until(lambda: load.count(V1) >= mark + 10, "V1 answering again", 60, server)
    assert_none_failed(load)
    assert md5(cached) == good  # pulled again, verified
    r = server.predict()
    assert r.json()["version"] == V1 and close(r.json()["outputs"], expected)
    assert server.health()["status"] == "ok"


# -- (e) SIGTERM during a swap ---------------------------------------------------------------------
def test_sigterm_during_a_swap_finishes_in_flight_requests_and_exits_0(
    registry, bare_remote, make_bundle, serve
):
    register(registry, make_bundle(1, policy=slow_policy_bytes()), V1)
    register(registry, make_bundle(2), V2)
    promote(registry, V1)
    server = serve(bare_remote, "--poll", "0.5", *NO_FALLBACK)

    load = Hammer(server.url, threads=3, inputs=slow_row(0.5))  # each request computes ~0.5 s
    with load:
        wait_until(lambda: load.count(V1) >= 3, "answers from V1", 60, server)
        promote(registry, V2)
        wait_until(  # the agent has read the new manifest and is pulling/loading V2
            lambda: (m := server.model())["wanted"] == V2 and m["served"] == V1,
            "the swap under way",
            60,
            server,
        )
        sent = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(40)
    assert code == 0, server.tail()
    # requests already at the server when SIGTERM came (sent 0.2 s before, each computing
    # ~0.5 s) all finished; those sent later may be refused: the server is going away
    in_flight = [a for a in load.answers if a[0] < sent - 0.2 and a[1] > sent]
    assert not load.failed(before=sent - 0.2), load.failed(before=sent - 0.2)[:3]
    assert in_flight and {a[2] for a in in_flight} == {200}
    with pytest.raises(httpx.HTTPError):
        server.predict()
