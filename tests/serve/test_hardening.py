"""The real `gitreg serve` under a hostile client, pusher and webhook sender (issue 11), over
loopback: each finding reproduced and shown fixed. The server process, registries with a bare
remote and TorchScript bundles are the fixtures in tests/conftest.py and tests/serve/conftest.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import math
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gitreg.testing.bundles import ROW, close, expected_outputs, policy_bytes
from gitreg.testing.repos import branch_head as head_of
from gitreg.testing.repos import git
from gitreg.testing.repos import promote_pushed as promote
from gitreg.testing.repos import register_pushed as register
from gitreg.testing.server import ServeProcess as Server
from gitreg.testing.server import wait_for as wait_until

pytestmark = pytest.mark.slow


V1 = "v2025-07-01--10h00"
V2 = "v2025-07-02--10h00"
V3 = "v2025-07-03--10h00"
JUDGE_SOON = ("--min-requests", "10", "--window", "50", "--max-error-rate", "0.05", "--max-p99-ms", "600000")


def no_shape_metadata(seed: int) -> dict[str, Any]:
    """What real exports carry: no input_shape."""
    return {
        "algo": "PPO",
        "framework": "torchscript",
        "created_at": "2025-07-06T18:51:23+00:00",
        "metrics": {"reward": 100.0 + seed},
    }


def picky_policy_bytes() -> bytes:
    """TorchScript, 4 wide: fails (inside the interpreter) on rows summing over 1000."""
    import torch

    class Picky(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(7)
            self.lin = torch.nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if bool(x.sum() > 1000.0):
                raise RuntimeError("picky: this row sums over 1000")
            return self.lin(x)

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(Picky()), buf)
    return buf.getvalue()


def post(server: Server, body: Any) -> httpx.Response:
    return httpx.post(server.url + "/predict", json=body, timeout=60)


# == (a) client errors are the client's ===========================================================
def test_wrong_width_floods_are_422_and_leave_the_new_version_serving(registry, remote, make_bundle, serve):
    v1 = make_bundle(1, metadata=no_shape_metadata(1))
    v2 = make_bundle(2, metadata=no_shape_metadata(2), policy=picky_policy_bytes())
    register(registry, v1, V1)
    register(registry, v2, V2)
    promote(registry, V1)
    server = serve(remote, "--poll", "0.5", *JUDGE_SOON)
    promote(registry, V2)
    wait_until(
        lambda: (m := server.model())["served"] == V2 and m["previous"] == V1, "V2 served", 120, server
    )

    # the width was learned from the model itself: the metadata does not say it
    models = server.get("/models").json()["policy"]
    assert models["production"]["input_shape"] == [4] and models["previous"]["input_shape"] == [4]
    assert server.model()["input_shapes"] == {V2: [4], V1: [4]}
    # ... and carried in the Open Inference Protocol's model metadata, -1 for the batch
    meta = server.get("/v2/models/policy").json()
    assert meta["versions"] == [V2, V1] and meta["platform"] == "pytorch_torchscript", meta
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}], meta
    one = server.get(f"/v2/models/policy/versions/{V1}").json()
    assert one["versions"] == [V1] and one["inputs"][0]["shape"] == [-1, 4], one
    missing = server.get("/v2/models/policy/versions/v2020-01-01--00h00")
    assert missing.status_code == 404 and V2 in missing.json()["error"], missing.text
    assert server.get("/v2/models/other").status_code == 404

    bad_bodies = [
        {"inputs": [[0.1, 0.2, 0.3]]},
        {"inputs": [[0.1, 0.2, 0.3, 0.4, 0.5]] * 3},
        {"inputs": [0.1, 0.2, 0.3]},
        {"inputs": [[[0.1, 0.2, 0.3, 0.4]]]},
    ]
    with httpx.Client(timeout=60) as c:
        for i in range(200):  # far past --min-requests: counted, this would be a fallback
            r = c.post(server.url + "/predict", json=bad_bodies[i % len(bad_bodies)])
            assert r.status_code == 422, r.text
            assert "[4]" in r.json()["detail"], r.text
    m = server.model()
    assert (m["served"], m["previous"], m["fallbacks"]) == (V2, V1, []), m
    assert m["stats"][V2]["requests"] == 0 and V2 not in m["rejected"]
    assert server.metric("gitreg_requests_total", model="policy", version=V2, outcome="rejected") == 200
    assert server.metric("gitreg_fallbacks_total", model="policy", role="production") == 0

    # one observation on its own is a batch of one, answered with that one output
    row = [0.1, 0.2, 0.3, 0.4]
    r = post(server, {"inputs": row})
    assert r.status_code == 200 and r.json()["version"] == V2
    want = expected_outputs(v2, [row])
    assert close(r.json()["outputs"], want[0]) and len(r.json()["outputs"]) == 2
    r = post(server, {"inputs": [row, row]})
    assert r.status_code == 200 and close(r.json()["outputs"], want * 2)

    # the model failing on inputs that fit: a 500 with one line, no interpreter traceback
    r = post(server, {"inputs": [[500.0, 500.0, 1.0, 1.0]]})
    assert r.status_code == 500
    detail = r.json()["detail"]
    assert "picky: this row sums over 1000" in detail and V2 in detail, detail
    assert "\n" not in detail and "Traceback" not in r.text and 'File "' not in r.text, r.text
    assert server.metric("gitreg_requests_total", model="policy", version=V2, outcome="error") == 1
    m = server.model()  # a model fault counts (1 of 3 requests, under --min-requests: not judged yet)
    assert m["served"] == V2 and m["stats"][V2]["requests"] == 3


def any_width_policy_bytes() -> bytes:
    """TorchScript with no weights that takes rows of any width (no probe can learn one)."""
    import torch

    class Halves(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :2] * 0.5

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(Halves()), buf)
    return buf.getvalue()


def rewrite_note(repo: Path, registry: Any, version: str, **changes: Any) -> None:
    """Replace ``version``'s validation note by its record with ``changes`` (what a validator
    with another finding would have written), in ``repo``; pushed with the notes ref."""
    info = registry.get(version)
    record = info.validation.model_copy(update=changes)
    git(repo, "notes", "--ref=refs/notes/gitreg", "add", "-f", "-m", record.to_note(), info.tag_object)


def test_the_agent_takes_the_input_shape_from_the_validation_record(
    registry, repo_dir, remote, make_bundle, serve
):
    register(registry, make_bundle(1, metadata=no_shape_metadata(1), policy=any_width_policy_bytes()), V1)
    register(registry, make_bundle(2, metadata=no_shape_metadata(2), policy=any_width_policy_bytes()), V2)
    for v in (V1, V2):
        assert registry.validate(v, record=True).input_shape is None  # any width: nothing learned
    rewrite_note(repo_dir, registry, V1, input_shape=[3])  # a record says 3 wide, for V1's files
    rewrite_note(  # V2's note says 3 too, but was written for other files: it says nothing of V2
        repo_dir, registry, V2, input_shape=[3], files=registry.get(V1).files
    )
    git(repo_dir, "push", "-q", "origin", "refs/notes/gitreg:refs/notes/gitreg")
    promote(registry, V1)
    server = serve(remote, "--poll", "0.5")

    assert server.model()["input_shapes"] == {V1: [3]}  # the probe alone would say None
    assert server.get("/models").json()["policy"]["production"]["input_shape"] == [3]
    r = post(server, {"inputs": [[0.2, 0.4, 0.6]]})
    assert r.status_code == 200 and close(r.json()["outputs"], [[0.1, 0.2]]), r.text
    r = post(server, {"inputs": [[0.2, 0.4, 0.6, 0.8]]})
    assert r.status_code == 422 and "[3]" in r.json()["detail"], r.text

    promote(registry, V2)
    wait_until(lambda: server.model()["served"] == V2, "V2 served", 120, server)
    assert server.model()["input_shapes"] == {V2: None, V1: [3]}


# == (b) bounded by construction ==================================================================
def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@dataclass
class Steady:
    """One client predicting in a loop: (status, seconds) per request."""

    url: str
    results: list[tuple[int, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Steady:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(60)

    def _run(self) -> None:
        with httpx.Client(timeout=60) as c:
            while not self._stop.is_set() and len(self.results) < 100_000:
                t0 = time.perf_counter()
                try:
                    code = c.post(self.url + "/predict", json={"inputs": ROW}).status_code
                except httpx.HTTPError:
                    code = -1
                self.results.append((code, time.perf_counter() - t0))


def huge_request(port: int, head: bytes, chunk: bytes, total: int) -> tuple[bytes, float]:
    """Send ``head`` then ``chunk`` after ``chunk`` (up to ``total`` bytes) while reading the
    answer; (the answer's first bytes, seconds until they came)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sent = {"n": 0}

    def send() -> None:
        try:
            sock.sendall(head)
            while sent["n"] < total:
                sock.sendall(chunk)
                sent["n"] += len(chunk)
        except OSError:  # the server answered and closed: that is the point
            pass

    t0 = time.perf_counter()
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    answer = b""
    try:
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    except OSError:
        pass
    elapsed = time.perf_counter() - t0
    sock.close()
    sender.join(30)
    assert sent["n"] < total, "the server read the whole body"
    return answer, elapsed


def test_a_200_mb_body_is_a_fast_413_while_another_client_keeps_answering(
    registry, remote, make_bundle, serve
):
    register(registry, make_bundle(1), V1)
    promote(registry, V1)
    server = serve(remote, "--poll", "0.5")
    size = 200 * 1024 * 1024
    mib = b"[" + b"0.5," * (256 * 1024 - 1) + b"0.5]"  # one MiB of JSON-ish bytes
    rss_before = rss_mb(server.proc.pid)
    with Steady(server.url) as steady:
        wait_until(lambda: len(steady.results) >= 20, "a steady client", 30, server)
        mark = len(steady.results)
        head = (
            "POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n"
        ).encode()
        answer, took = huge_request(server.port, head, mib, size)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert took < 5, took
        chunked = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        chunked += b"Transfer-Encoding: chunked\r\n\r\n"
        frame = b"%x\r\n" % len(mib) + mib + b"\r\n"
        answer, took = huge_request(server.port, chunked, frame, size)  # no length: counted as it streams
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert took < 5, took
        r = httpx.post(server.url + "/predict", content=mib * 2, headers={"content-type": "application/json"})
        assert r.status_code == 413 and str(1 << 20) in r.json()["detail"]
        wait_until(lambda: len(steady.results) >= mark + 20, "more steady answers", 30, server)
    during = steady.results[mark:]
    assert {code for code, _ in steady.results} == {200}
    assert max(t for _, t in during) < 3.0, max(during)
    assert rss_mb(server.proc.pid) - rss_before < 100, (rss_before, rss_mb(server.proc.pid))
    r = server.predict()
    assert r.status_code == 200 and r.json()["version"] == V1


MAX_BODY = 1 << 20  # --max-body-bytes' default
REQUEST_RSS_BOUND_MB = 48  # the README's worst case for one request at the defaults (< 30 MiB), with room


def test_a_request_at_the_body_limit_with_the_widest_batch_keeps_rss_growth_bounded(
    registry, remote, make_bundle, serve
):
    width = 255  # 1,024 rows of 255 three-character floats: just under 1 MiB
    metadata = {**no_shape_metadata(1), "input_shape": [width]}
    register(registry, make_bundle(1, metadata=metadata, policy=policy_bytes(1, in_dim=width)), V1)
    promote(registry, V1)
    server = serve(remote, "--poll", "5")  # --max-body-bytes and --max-batch at their defaults
    row = [round(0.1 * (i % 9 + 1), 1) for i in range(width)]
    widest = json.dumps({"inputs": [row] * 1024}, separators=(",", ":")).encode()
    dicts = b'{"inputs":[' + b"{}," * ((MAX_BODY - 20) // 3) + b"{}]}"  # the costliest JSON to parse
    deep = b'{"inputs":' + b"[" * (MAX_BODY - 20) + b"]}"  # nesting that would explode a recursive parser
    assert MAX_BODY * 0.95 < len(widest) <= MAX_BODY and len(dicts) <= MAX_BODY and len(deep) <= MAX_BODY
    headers = {"content-type": "application/json"}
    rss_before = rss_mb(server.proc.pid)
    peak = rss_before
    with httpx.Client(timeout=60) as c:
        for _ in range(10):  # bounded: growth that accumulated per request would show
            r = c.post(server.url + "/predict", content=widest, headers=headers)
            assert r.status_code == 200 and len(r.json()["outputs"]) == 1024, r.text[:300]
            r = c.post(server.url + "/predict", content=dicts, headers=headers)
            assert r.status_code == 422 and "is dict, not a number" in r.json()["detail"], r.text[:300]
            t0 = time.perf_counter()
            r = c.post(server.url + "/predict", content=deep, headers=headers)
            assert r.status_code == 422 and "not valid JSON" in r.json()["detail"], r.text[:300]
            assert time.perf_counter() - t0 < 2.0
            peak = max(peak, rss_mb(server.proc.pid))
    grown = peak - rss_before
    assert grown < REQUEST_RSS_BOUND_MB, (rss_before, peak)
    over = widest + b" " * (MAX_BODY + 1 - len(widest))  # one byte past the limit: not parsed at all
    r = httpx.post(server.url + "/predict", content=over, headers=headers, timeout=60)
    assert r.status_code == 413 and str(MAX_BODY) in r.json()["detail"], r.text[:200]


def is_closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_500_idle_connections_are_capped_and_closed_while_a_client_succeeds(
    registry, remote, make_bundle, serve
):
    register(registry, make_bundle(1), V1)
    promote(registry, V1)
    header_timeout = 8.0
    server = serve(
        remote, "--poll", "5", "--max-connections", "100", "--limit-concurrency", "150",
        "--header-timeout", str(header_timeout),
    )  # fmt: skip
    idle: list[socket.socket] = []
    try:
        t0 = time.monotonic()
        for _ in range(500):  # connect and say nothing
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        loris = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        loris.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the rest
        codes = [server.predict().status_code for _ in range(10)]  # fresh connections, each
        assert time.monotonic() - t0 < header_timeout, "too slow to test the cap before the timeout"
        assert codes == [200] * 10, codes  # past --limit-concurrency if idle sockets counted
        # the cap closed the oldest idle ones at once (not waiting for the timeout)
        closed_early = sum(map(is_closed, idle))
        assert closed_early >= 390, closed_early
        # the rest, and the half-sent head, go at --header-timeout
        wait_until(
            lambda: all(map(is_closed, idle)) and is_closed(loris), "every idle socket closed", 60, server
        )
        assert time.monotonic() - t0 >= header_timeout * 0.9 or closed_early == 500
        assert server.predict().status_code == 200
        assert server.get("/ready").status_code == 200
    finally:
        for s in idle:
            s.close()


def test_a_body_trickled_after_its_head_is_cut_off_at_the_body_timeout_while_a_client_succeeds(
    registry, remote, make_bundle, serve
):
    register(registry, make_bundle(1), V1)
    promote(registry, V1)
    body_timeout = 3.0
    server = serve(remote, "--poll", "5", "--body-timeout", str(body_timeout), "--header-timeout", "30")
    trickler = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    codes: list[int] = []
    answer, sent = b"", 0
    try:
        trickler.sendall(
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n"
        )
        t0 = time.monotonic()
        trickler.settimeout(1.0)  # one byte a second: each wait for an answer lasts a second
        while sent < 1000 and time.monotonic() - t0 < 60:
            try:
                trickler.sendall(b" ")
                sent += 1
                data = trickler.recv(4096)
            except TimeoutError:
                codes.append(server.predict().status_code)  # another client, meanwhile
                continue
            except OSError:  # reset by the server: closed too
                break
            if not data:
                break
            answer += data
            while data:  # the rest of the answer, up to the close
                try:
                    data = trickler.recv(4096)
                except OSError:
                    break
                answer += data
            break
        took = time.monotonic() - t0
    finally:
        trickler.close()
    assert sent < 1000, "the server waited for the whole trickled body"
    assert body_timeout * 0.9 <= took < body_timeout + 3, took
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"--body-timeout" in answer
    assert codes and set(codes) == {200}, codes
    # a body that arrives in pieces within the deadline is answered as usual
    piece = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        body = json.dumps({"inputs": ROW}).encode()
        piece.sendall(
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body[:5]
        )
        assert server.predict().status_code == 200  # a round trip between the pieces
        piece.sendall(body[5:])
        assert piece.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        piece.close()
    assert "Traceback" not in server.tail(200)


# == (c) the manifest follows the branch ==========================================================
def test_a_model_removed_from_models_yaml_is_unloaded_and_ready_is_200_again(
    registry, remote, make_bundle, serve
):
    register(registry, make_bundle(1), V1)
    promote(registry, V1)
    server = serve(remote, "--poll", "0.5")
    before = registry.manifest_path.read_text()
    # add a model whose production version never loads (as in the finding), and one that does
    registry.register(make_bundle(2, policy=b"\x00not a model\xff" * 64), "broken", version=V2, push=True)
    registry.register(make_bundle(3), "other", version=V3, push=True)
    promote(registry, V2)
    promote(registry, V3)
    h = wait_until(
        lambda: (
            (h := server.health())["models"].get("other", {}).get("served") == V3
            and V2 in h["models"].get("broken", {}).get("rejected", {})
            and h
        ),
        "other served, broken rejected",
        120,
        server,
    )
    assert set(h["models"]) == {"policy", "broken", "other"}
    r = server.get("/ready")
    assert r.status_code == 503 and r.json()["waiting"] == ["broken"]
    assert server.metric("gitreg_served_version_info", model="other", role="production", version=V3) == 1
    assert server.metric("gitreg_rejected_version_info", model="broken", version=V2) == 1

    registry.manifest_path.write_text(before)  # the revert
    git(registry.root, "commit", "-qam", "revert: drop broken and other")
    git(registry.root, "push", "-q", "origin", "HEAD:main")
    wait_until(lambda: server.get("/ready").status_code == 200, "/ready 200 after the revert", 120, server)
    h = wait_until(lambda: (h := server.health())["status"] == "ok" and h, "healthy", 60, server)
    assert set(h["models"]) == {"policy"}, h
    assert set(server.get("/models").json()) == {"policy"}
    assert server.metric("gitreg_served_version_info", model="other", role="production", version=V3) == 0
    info = ("gitreg_served_version_info{", "gitreg_wanted_version_info{", "gitreg_rejected_version_info{")
    lines = [line for line in server.get("/metrics").text.splitlines() if line.startswith(info)]
    assert lines and not [line for line in lines if 'model="broken"' in line or 'model="other"' in line]
    r = httpx.post(server.url + "/models/other/predict", json={"inputs": ROW}, timeout=30)
    assert r.status_code == 404
    assert server.predict().json()["version"] == V1


def test_a_nesting_bomb_or_non_utf8_manifest_is_refused_fast_and_the_last_good_one_keeps_serving(
    registry, remote, make_bundle, serve
):
    """20,000 levels of `[` (40 KB) stalled a sync for 115 s: the pre-scan refuses them in
    milliseconds, and a non-UTF-8 models.yaml is refused as `gitreg check` refuses it."""
    register(registry, make_bundle(1), V1)
    register(registry, make_bundle(2), V2)
    promote(registry, V1)
    server = serve(remote, "--poll", "0.5")
    good = registry.manifest_path.read_bytes()

    def push(data: bytes, message: str) -> None:
        registry.manifest_path.write_bytes(data)
        git(registry.root, "commit", "-qam", message)
        git(registry.root, "push", "-q", "origin", "HEAD:main")

    for data, said in [
        (b"version: 1\nmodels: " + b"[" * 20_000 + b"]" * 20_000 + b"\n", "nests deeper than 64 levels"),
        (good + b"# caf\xe9\n", "is not UTF-8"),
    ]:
        push(data, f"hostile manifest: {said}")
        h = wait_until(
            lambda said=said: (h := server.health())["last_error"] and said in h["last_error"] and h,
            f"the agent refuses: {said}",
            15,  # a poll and a fetch; the bomb alone took 115 s to parse
            server,
        )
        assert "models.yaml:" in h["last_error"] and "\n" not in h["last_error"], h["last_error"]
        assert h["models"]["policy"]["served"] == V1, h  # the last good manifest keeps serving
        r = server.predict()
        assert r.status_code == 200 and r.json()["version"] == V1

    push(good, "restore models.yaml")
    started = time.monotonic()
    promote(registry, V2)  # a later promotion is not delayed by what came before
    wait_until(lambda: server.predict().json()["version"] == V2, "V2 served", 60, server)
    assert time.monotonic() - started < 60
    h = wait_until(lambda: (h := server.health())["last_error"] is None and h, "no error", 30, server)
    assert h["models"]["policy"]["served"] == V2


# == (d) webhooks =================================================================================
def standard_headers(secret: str, msg_id: str, body: bytes, stamp: int | None = None) -> dict[str, str]:
    """Standard Webhooks (standardwebhooks.com): v1,base64(HMAC-SHA256(id.timestamp.body))."""
    stamp = int(time.time()) if stamp is None else stamp
    key = base64.b64decode(secret.removeprefix("whsec_"))
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest())
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": f"v1,{sig.decode()}"}


def test_a_replayed_delivery_triggers_one_fetch_and_a_burst_is_coalesced(
    registry, remote, make_bundle, serve
):
    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    register(registry, make_bundle(1), V1)
    register(registry, make_bundle(2), V2)
    promote(registry, V1)
    server = serve(
        remote, "--poll", "3600", "--webhook-secret-env", "HOOK_SECRET", env={"HOOK_SECRET": secret}
    )
    hook = server.url + "/hooks/git"
    hooks = lambda: server.metric("gitreg_syncs_total", trigger="hook")  # noqa: E731
    assert hooks() == 0 and server.metric("gitreg_syncs_total", trigger="start") == 1

    body = json.dumps({"ref": "refs/heads/main", "after": head_of(remote)}).encode()
    old = standard_headers(secret, "msg_old", body, stamp=int(time.time()) - 3600)
    assert httpx.post(hook, content=body, headers=old, timeout=30).status_code == 401  # too old
    forged = {**standard_headers(secret, "msg_1", body), "webhook-id": "msg_2"}
    assert httpx.post(hook, content=body, headers=forged, timeout=30).status_code == 401  # id not signed

    promote(registry, V2)
    signed = standard_headers(secret, "msg_1", body)
    with httpx.Client(timeout=30) as c:
        answers = [c.post(hook, content=body, headers=signed).json()["sync"] for _ in range(100)]  # a replay
    assert answers[0] == "scheduled" and set(answers[1:]) == {"duplicate delivery: ignored"}
    wait_until(lambda: server.model()["served"] == V2, "V2 after the hook", 90, server)
    github = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    for _ in range(20):  # a GitHub delivery replayed: its X-GitHub-Delivery is the same
        headers = {"X-Hub-Signature-256": f"sha256={github}", "X-GitHub-Delivery": "d-1"}
        assert httpx.post(hook, content=body, headers=headers, timeout=30).status_code in (200, 202)
    # one fresh delivery afterwards flushes the pipeline: exactly two hook-triggered fetches in all
    fresh = standard_headers(secret, "msg_3", body)
    assert httpx.post(hook, content=body, headers=fresh, timeout=30).json()["sync"] == "scheduled"
    wait_until(lambda: hooks() >= 3, "the fresh deliveries fetched", 30, server)
    assert hooks() == 3, hooks()  # msg_1 once, d-1 once, msg_3 once

    # a burst of distinct deliveries: one fetch at once, then at most one per 2 s (the agent's
    # hook_interval) while it lasts, and a last one for the deliveries that came meanwhile
    t0 = time.monotonic()
    with httpx.Client(timeout=30) as c:
        for i in range(100):
            r = c.post(hook, content=body, headers=standard_headers(secret, f"burst-{i}", body))
            assert r.status_code == 202
    took = time.monotonic() - t0
    wait_until(lambda: hooks() >= 4, "the burst fetched", 30, server)
    fresh = standard_headers(secret, "msg_last", body)
    assert httpx.post(hook, content=body, headers=fresh, timeout=30).status_code == 202
    wait_until(lambda: hooks() >= 5, "the last delivery fetched", 30, server)
    assert hooks() - 3 <= 2 + math.ceil(took / 2.0), (hooks(), took)  # not 101


# == (e) logs, honest health, stale temp folders ==================================================
def test_json_logs_honest_health_and_stale_pulls_cleaned(
    registry, remote, make_bundle, serve, dvc_remote, tmp_path
):
    register(registry, make_bundle(1), V1)
    register(registry, make_bundle(2), V2)
    promote(registry, V1)
    # a pull killed half-way, left by an earlier agent on this cache (the CLI's folder per remote)
    folder = (
        tmp_path
        / "cache-a"
        / hashlib.sha1(str(remote.resolve()).encode(), usedforsecurity=False).hexdigest()[:12]
    )
    stale = folder / "bundles" / ".pull-killed" / "bundle"
    stale.mkdir(parents=True)
    (stale / "policy.pt").write_bytes(b"\0" * 50_000)
    server = serve(remote, "--poll", "0.5", "--json")
    assert not stale.parent.exists()

    away = tmp_path / "dvc-remote-away"
    dvc_remote.rename(away)  # the DVC remote is unreachable for a while
    try:
        promote(registry, V2)
        m = wait_until(lambda: (m := server.model())["last_error"] and m, "the pull failing", 120, server)
        assert m["served"] == V1 and m["wanted"] == V2 and V2 not in m["rejected"], m  # retried
        assert "may be unreachable" in m["last_error"] and "re-register the bundle" not in m["last_error"], m
        assert server.predict().json()["version"] == V1
    finally:
        away.rename(dvc_remote)
    wait_until(lambda: server.model()["served"] == V2, "V2 once the remote is back", 120, server)

    records = [json.loads(line) for line in server.log.read_text().splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    events = {(r.get("event"), r.get("model"), r.get("version")) for r in records}
    assert {("serving", "policy", V1), ("serving", "policy", V2), ("load_failed", "policy", None)} <= events
    assert any(r.get("event") == "cleaned" and "50000 bytes" in r["message"] for r in records)


def test_a_fresh_replica_whose_production_bytes_were_gc_ed_says_so_on_health(
    registry, remote, make_bundle, serve
):
    """`dvc gc -w -c` in the registry deletes production's bytes from the DVC remote (it keeps
    only the checked-out commit's): a new replica cannot serve, and /health says why in one line."""
    import subprocess
    import sys

    register(registry, make_bundle(1), V1)
    promote(registry, V1)
    register(registry, make_bundle(2), V2)  # the checked-out commit is V2's now
    subprocess.run([sys.executable, "-m", "dvc", "gc", "-w", "-c", "-f"], cwd=registry.root, check=True)
    server = serve(remote, "--poll", "0.5", ready=False)
    m = wait_until(lambda: (m := server.model())["last_error"] and m, "the pull failing", 120, server)
    line = m["last_error"]
    assert m["served"] is None and m["wanted"] == V1, m
    assert "\n" not in line and line.startswith(f"{V1}: "), line
    assert "neither the DVC cache nor the remote" in line and "dvc gc -w -c" in line, line
    assert httpx.get(f"{server.url}/ready", timeout=10).status_code == 503
