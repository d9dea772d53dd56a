"""End-to-end: the real `gitreg serve` (uvicorn on a free loopback port, its own process group)
following a bare Git remote, pulling real TorchScript bundles from real DVC remotes (a folder;
S3 on a private moto_server). Changes are made as users make them: register + promote in the
registry repo and push to the bare remote. Every wait polls with a deadline; every process is
killed in a fixture's teardown."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from gitreg.testing.bundles import ROW, close, expected_outputs, policy_bytes, slow_policy_bytes, slow_row
from gitreg.testing.cli import run_cli
from gitreg.testing.load import Load as HarnessLoad
from gitreg.testing.net import free_port
from gitreg.testing.repos import branch_head as head_of
from gitreg.testing.repos import git
from gitreg.testing.repos import promote_pushed as promote
from gitreg.testing.repos import register_pushed as register
from gitreg.testing.server import NO_FALLBACK, wait_ready
from gitreg.testing.server import wait_for as wait_until

pytestmark = pytest.mark.slow

T = TypeVar("T")

V1 = "v2025-07-01--10h00"
V2 = "v2025-07-02--10h00"
V3 = "v2025-07-03--10h00"
V4 = "v2025-07-04--10h00"
V5 = "v2025-07-05--10h00"


# -- load (the harness's), answering as (status, version, body) -------------------------------------
class Load(HarnessLoad):
    def __init__(self, url: str, threads: int = 8, inputs: Any = ROW) -> None:
        super().__init__(url, clients=threads, inputs=inputs)

    def all(self) -> list[tuple[int, str, Any]]:  # type: ignore[override]
        return self.answers()

    @property
    def results(self) -> list[list[tuple[int, str, Any]]]:
        """The answers client by client."""
        return [[(s.status, s.version, s.body) for s in list(per)] for per in self.samples]


# == (1) hot swap under load ======================================================================
def test_hot_swap_under_concurrent_load_fails_no_request(registry, remote, make_bundle, serve):
    bundles = {v: make_bundle(seed) for v, seed in ((V1, 1), (V2, 2), (V3, 3))}
    for v, b in bundles.items():
        register(registry, b, v)
    expected = {v: expected_outputs(b) for v, b in bundles.items()}
    assert expected[V1] != expected[V2] != expected[V3]
    promote(registry, V1)
    server = serve(remote, "--poll", "0.5", *NO_FALLBACK)

    with Load(server.url, threads=8) as load:
        wait_until(lambda: load.seen(V1) >= 50, "answers from V1", 60, server)
        for new in (V2, V3):
            promote(registry, new)
            wait_until(lambda new=new: load.last_versions() == {new}, f"every client on {new}", 180, server)
            mark = len(load.all())
            wait_until(
                lambda new=new, mark=mark: load.seen(new, mark) >= 50, f"more answers from {new}", 60, server
            )

    answers = load.all()
    failed = [r for r in answers if r[0] != 200]
    assert not failed, f"{len(failed)} of {len(answers)} requests failed, e.g. {failed[:3]}"
    assert {v for _, v, _ in answers} == {V1, V2, V3}
    for _, version, body in answers:  # every answer came from the version it names
        assert close(body["outputs"], expected[version]), (version, body)
    for per_thread in load.results:  # a swap is atomic: no client goes back to an older version
        versions = [v for _, v, _ in per_thread]
        assert versions == sorted(versions)
    h = wait_until(lambda: (h := server.health())["status"] == "ok" and h, "healthy", 30, server)
    assert (h["models"]["policy"]["served"], h["models"]["policy"]["previous"]) == (V3, V2), h
    assert server.metric("gitreg_swaps_total", model="policy", role="production") == 3, server.tail()
    assert server.metric("gitreg_requests_total", model="policy", version=V2, outcome="ok") > 0


# == (2) broken bundles are never served (+ (10) `gitreg status --server`) ========================
def test_broken_bundles_are_never_served(registry, remote, make_bundle, serve, dvc_remote, tmp_path):
    register(registry, make_bundle(1), V1)
    garbage, tampered, wrong_shape = V2, V3, V4
    register(registry, make_bundle(2, policy=b"\x00not a model\xff" * 64), garbage)
    register(registry, make_bundle(3), tampered)
    register(registry, make_bundle(4, policy=policy_bytes(seed=4, in_dim=8)), wrong_shape)  # takes 8, says 4
    # replace the stored bytes of `tampered` with a different (valid!) model: its md5 no longer matches
    md5 = next(f.md5 for f in registry.get(tampered).files if f.path == "policy.pt")
    obj = dvc_remote / "files" / "md5" / md5[:2] / md5[2:]
    assert obj.is_file()
    obj.chmod(0o644)
    obj.write_bytes(policy_bytes(seed=99))
    promote(registry, V1)
    server = serve(remote, "--poll", "0.5", *NO_FALLBACK)

    reasons = {  # why each is refused (garbage is not TorchScript, so it is taken for a state dict)
        garbage: ("sandboxed load failed", "state dict"),
        tampered: ("md5",),
        wrong_shape: ("sandboxed load failed",),
    }
    with Load(server.url, threads=2) as load:
        for bad, why in reasons.items():
            promote(registry, bad)
            m = wait_until(
                lambda bad=bad: (m := server.model())["wanted"] == bad and bad in m["rejected"] and m,
                f"{bad} rejected",
                120,
                server,
            )
            assert any(w in m["rejected"][bad] for w in why), m
            h = server.health()
            assert h["status"] == "degraded"
            m = h["models"]["policy"]
            assert (m["served"], m["wanted"]) == (V1, bad)
            assert m["last_error"] and bad in m["last_error"], m
            r = server.predict()
            assert r.status_code == 200 and r.json()["version"] == V1
        # a few more polls: still rejected, still not served, still said
        syncs = server.metric("gitreg_last_sync_timestamp_seconds")
        wait_until(
            lambda: server.metric("gitreg_last_sync_timestamp_seconds") > syncs + 1,
            "two more syncs",
            30,
            server,
        )
        m = server.model()
        assert m["served"] == V1 and wrong_shape in m["rejected"]
        assert m["last_error"] and wrong_shape in m["last_error"], m

    answers = load.all()
    assert answers and {(code, v) for code, v, _ in answers} == {(200, V1)}
    assert server.metric("gitreg_load_failures_total", model="policy") >= 3
    assert server.metric("gitreg_served_version_info", model="policy", role="production", version=V1) == 1
    text = server.get("/metrics").text
    for bad in reasons:  # never served, never answered: only wanted and refused name them
        named = [line for line in text.splitlines() if f'version="{bad}"' in line]
        assert all(
            line.startswith(("gitreg_wanted_version_info", "gitreg_rejected_version_info")) for line in named
        )
    assert f'gitreg_rejected_version_info{{model="policy",version="{wrong_shape}"}} 1.0' in text
    assert (
        f'gitreg_wanted_version_info{{model="policy",role="production",version="{wrong_shape}"}} 1.0' in text
    )
    assert not list((tmp_path / "cache-a").rglob(".pull-*"))  # failed pulls leave nothing behind

    # (10) what a server serves next to what it wants, for humans and for scripts
    out = run_cli("status", "--server", server.url, check=True).stdout
    assert "degraded" in out and V1 in out and wrong_shape in out and "≠" in out
    data = json.loads(run_cli("status", "--server", server.url, "--json", check=True).stdout)
    assert data["status"] == "degraded"
    assert (data["models"]["policy"]["served"], data["models"]["policy"]["wanted"]) == (V1, wrong_shape)
    down = run_cli("status", "--server", f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 1 and down.stderr.startswith("error:") and "Traceback" not in down.stderr


# == (3) the Git remote goes away and comes back ==================================================
def test_git_remote_away_keeps_serving_and_recovers(registry, remote, make_bundle, serve):
    register(registry, make_bundle(1), V1)
    register(registry, make_bundle(2), V2)
    promote(registry, V1)
    server = serve(remote, "--poll", "0.5", *NO_FALLBACK)
    assert server.health()["status"] == "ok"

    away = remote.with_name("remote-away.git")
    remote.rename(away)
    try:
        h = wait_until(lambda: (h := server.health())["sync_failures"] >= 2 and h, "failed syncs", 60, server)
        assert h["status"] == "degraded" and h["last_error"], h
        assert h["models"]["policy"]["served"] == V1
        r = server.predict()
        assert r.status_code == 200 and r.json()["version"] == V1
        assert server.metric("gitreg_sync_failures_total") >= 2
        assert server.get("/ready").status_code == 200  # still serving: still ready
    finally:
        away.rename(remote)

    promote(registry, V2)
    wait_until(lambda: server.predict().json()["version"] == V2, "V2 served", 120, server)
    h = wait_until(lambda: (h := server.health())["status"] == "ok" and h, "healthy again", 30, server)
    assert h["last_error"] is None and h["sync_failures"] == 0
    assert h["commit"] == head_of(remote)


# == (4) S3 goes away mid-pull and comes back =====================================================
def test_s3_away_mid_pull_keeps_serving_and_recovers(
    private_moto, bare_remote, make_bundle, serve, tmp_path, clock
):
    from gitreg.registry import Registry

    bucket = f"gitreg-{uuid.uuid4().hex[:12]}"
    private_moto.client().create_bucket(Bucket=bucket)
    repo = tmp_path / "s3reg"
    Registry.init(repo, remote=f"s3://{bucket}/reg", endpoint_url=private_moto.endpoint)
    git(repo, "remote", "add", "origin", str(bare_remote))
    registry = Registry(repo, clock=clock)
    register(registry, make_bundle(1), V1)
    promote(registry, V1)
    server = serve(bare_remote, "--poll", "600", *NO_FALLBACK)  # syncs only when told to (or to retry)
    assert server.model()["served"] == V1

    register(registry, make_bundle(2), V2)  # its bytes reach S3 ...
    promote(registry, V2)
    private_moto.stop()  # ... and S3 goes away before the agent pulls them
    assert httpx.post(server.url + "/hooks/git", content=b"{}", timeout=30).status_code == 202
    h = wait_until(
        lambda: (h := server.health())["models"]["policy"]["last_error"] and h, "a failed pull", 120, server
    )
    assert h["status"] == "degraded"
    m = h["models"]["policy"]
    assert (m["served"], m["wanted"]) == (V1, V2)
    assert "cannot read from the DVC remote" in m["last_error"] and "Could not connect" in m["last_error"]
    assert V2 not in m["rejected"]  # S3 being away says nothing about the bundle: retried
    r = server.predict()
    assert r.status_code == 200 and r.json()["version"] == V1

    # S3 returns (moto keeps nothing: the bucket and the objects come back from the DVC cache)
    private_moto.start()
    s3 = private_moto.client()
    s3.create_bucket(Bucket=bucket)
    cache = repo / ".dvc" / "cache" / "files" / "md5"
    objects = [p for p in cache.rglob("*") if p.is_file()]
    assert objects
    for p in objects:
        s3.put_object(Bucket=bucket, Key=f"reg/files/md5/{p.parent.name}/{p.name}", Body=p.read_bytes())
    httpx.post(server.url + "/hooks/git", content=b"{}", timeout=30)
    wait_until(lambda: server.predict().json()["version"] == V2, "V2 served from S3", 120, server)
    h = wait_until(lambda: (h := server.health())["status"] == "ok" and h, "healthy again", 60, server)
    assert h["models"]["policy"]["last_error"] is None


# == (5) canary share ============================================================================
def test_canary_gets_its_share_and_names_its_version(registry, remote, make_bundle, serve):
    bundles = {V1: make_bundle(1), V2: make_bundle(2)}
    for v, b in bundles.items():
        register(registry, b, v)
    expected = {v: expected_outputs(b) for v, b in bundles.items()}
    promote(registry, V1)
    promote(registry, V2, canary=20)
    server = serve(remote, "--poll", "0.5", "--seed", "7", *NO_FALLBACK)
    wait_until(lambda: server.model()["canary"]["served"] == V2, "the canary loaded", 120, server)
    assert server.model()["canary"]["traffic"] == 20
    assert server.get("/models").json()["policy"]["canary"]["traffic"] == 20

    counts = {V1: 0, V2: 0}
    lock = threading.Lock()
    problems: list[Any] = []

    def client(n: int) -> None:
        with httpx.Client(timeout=60) as c:
            for _ in range(n):
                r = c.post(server.url + "/predict", json={"inputs": ROW})
                body = r.json()
                if r.status_code != 200 or not close(body["outputs"], expected[body["version"]]):
                    problems.append((r.status_code, body))
                    continue
                with lock:
                    counts[body["version"]] += 1

    workers = [threading.Thread(target=client, args=(500,)) for _ in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(300)
    assert not problems, problems[:3]
    total = counts[V1] + counts[V2]
    assert total == 2000
    share = 100 * counts[V2] / total
    assert abs(share - 20) <= 3.5, counts
    assert server.metric("gitreg_requests_total", model="policy", version=V2, outcome="ok") == counts[V2]
    assert server.metric("gitreg_served_version_info", model="policy", role="canary", version=V2) == 1


# == (6) automatic fallback =======================================================================
def test_a_slow_new_version_falls_back_and_is_not_taken_again(registry, remote, make_bundle, serve):
    register(registry, make_bundle(1), V1)
    register(registry, make_bundle(2, policy=slow_policy_bytes()), V2)
    promote(registry, V1)
    server = serve(remote, "--poll", "0.5", "--max-p99-ms", "50", "--min-requests", "20", "--window", "50")
    promote(registry, V2)
    wait_until(lambda: server.model()["served"] == V2, "V2 swapped in", 120, server)

    slow = slow_row(0.3)  # V1 answers it at once; V2 takes ~0.3 s
    with Load(server.url, threads=2, inputs=slow) as load:
        m = wait_until(lambda: (m := server.model())["fallbacks"] and m, "a fallback", 120, server)
    assert not [r for r in load.all() if r[0] != 200]
    assert [(f["version"], f["role"], f["restored"]) for f in m["fallbacks"]] == [(V2, "production", V1)]
    assert "p99" in m["fallbacks"][0]["reason"]
    assert (m["served"], m["wanted"]) == (V1, V2) and V2 in m["rejected"]
    assert server.health()["status"] == "degraded"
    assert server.metric("gitreg_fallbacks_total", model="policy", role="production") == 1

    # the following polls leave it there: V2 is not taken again while models.yaml says the same
    start = server.metric("gitreg_last_sync_timestamp_seconds")
    wait_until(
        lambda: server.metric("gitreg_last_sync_timestamp_seconds") > start + 2, "more syncs", 30, server
    )
    r = server.predict(slow)
    assert r.status_code == 200 and r.json()["version"] == V1
    m = server.model()
    assert m["served"] == V1 and len(m["fallbacks"]) == 1
    assert server.metric("gitreg_swaps_total", model="policy", role="production") == 2


# == (7) webhook ==================================================================================
def test_signed_webhook_syncs_at_once_and_bad_signatures_are_refused(registry, remote, make_bundle, serve):
    secret, token = "hook-" + uuid.uuid4().hex, "api-" + uuid.uuid4().hex
    for v, seed in ((V1, 1), (V2, 2)):
        register(registry, make_bundle(seed), v)
    promote(registry, V1)
    server = serve(
        remote,
        *("--poll", "600", "--webhook-secret-env", "HOOK_SECRET", "--token-env", "API_TOKEN"),
        *NO_FALLBACK,
        env={"HOOK_SECRET": secret, "API_TOKEN": token},
    )
    auth = {"Authorization": f"Bearer {token}"}
    assert server.predict().status_code == 401
    assert server.predict(headers={"Authorization": "Bearer nope"}).status_code == 401
    assert server.predict(headers=auth).json()["version"] == V1

    hook = server.url + "/hooks/git"
    body = json.dumps({"ref": "refs/heads/main", "after": head_of(remote)}).encode()
    good = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    bad = "sha256=" + hmac.new(b"wrong", body, hashlib.sha256).hexdigest()
    promote(registry, V2)
    assert httpx.post(hook, content=body, headers={"X-Hub-Signature-256": bad}, timeout=30).status_code == 401
    assert httpx.post(hook, content=body, timeout=30).status_code == 401
    assert httpx.post(hook, content=body, headers={"X-Gitlab-Token": "nope"}, timeout=30).status_code == 401
    assert server.predict(headers=auth).json()["version"] == V1
    r = httpx.post(hook, content=body, headers={"X-Hub-Signature-256": good}, timeout=30)
    assert r.status_code == 202
    wait_until(
        lambda: server.predict(headers=auth).json()["version"] == V2, "V2 after a GitHub hook", 90, server
    )

    promote(registry, V1)  # back to the previous version: still loaded, so at once
    r = httpx.post(hook, content=b'{"object_kind": "push"}', headers={"X-Gitlab-Token": secret}, timeout=30)
    assert r.status_code == 202
    wait_until(
        lambda: server.predict(headers=auth).json()["version"] == V1, "V1 after a GitLab hook", 30, server
    )
    assert server.metric("gitreg_swaps_total", model="policy", role="production") == 3


# == (8) graceful shutdown ========================================================================
def test_sigterm_lets_the_request_in_flight_finish(registry, remote, make_bundle, serve):
    register(registry, make_bundle(1, policy=slow_policy_bytes()), V1)
    promote(registry, V1)
    server = serve(remote, "--poll", "0.5", *NO_FALLBACK)
    assert server.predict(slow_row(0.01)).status_code == 200

    result: dict[str, Any] = {}

    def slow_request(inputs: Any) -> None:
        try:
            result["response"] = server.predict(inputs)
        except Exception as e:
            result["error"] = e

    seconds = 3.0
    for _ in range(4):  # a request that is still computing after 0.5 s (longer if this one was quick)
        result.clear()
        t = threading.Thread(target=slow_request, args=(slow_row(seconds),))
        t.start()
        t.join(0.5)
        if t.is_alive():
            break
        assert result["response"].status_code == 200, result
        seconds *= 4
    else:
        pytest.fail(f"no request stayed in flight for 0.5 s: {result}")
    sent = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    t.join(60)
    assert "error" not in result, result
    r = result["response"]
    assert r.status_code == 200 and r.json()["version"] == V1
    code = server.proc.wait(30)
    assert code == 0, server.tail()
    assert time.monotonic() - sent < 25  # within the graceful period (--graceful 20) and then some
    with pytest.raises(httpx.HTTPError):
        server.predict()


# == (9) three replicas converge ==================================================================
def test_three_replicas_converge_on_a_new_version(registry, remote, make_bundle, serve):
    register(registry, make_bundle(1), V1)
    register(registry, make_bundle(2), V2)
    promote(registry, V1)
    replicas = [serve(remote, "--poll", "0.5", *NO_FALLBACK, name=n, ready=False) for n in "abc"]
    wait_ready(*replicas)
    assert {s.predict().json()["version"] for s in replicas} == {V1}

    promote(registry, V2)
    head = head_of(remote)
    for s in replicas:
        wait_until(lambda s=s: s.predict().json()["version"] == V2, f"{s.url} on V2", 180, *replicas)
    for s in replicas:
        h = s.health()
        assert h["status"] == "ok" and h["commit"] == head
        assert h["models"]["policy"]["served"] == V2
    caches = {Path(s.proc.args[s.proc.args.index("--cache") + 1]) for s in replicas}
    assert len(caches) == 3 and all(any(c.rglob("policy.pt")) for c in caches)  # they share nothing
