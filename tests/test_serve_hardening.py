"""The real `gitreg serve` under a hostile client, pusher and webhook sender (issue 11), over
loopback: each finding reproduced and shown fixed. The server process, registries with a bare
remote and TorchScript bundles are test_serve_e2e's fixtures."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest

import test_serve_e2e as e2e
from test_serve_e2e import Server, expected_outputs, promote, register, wait_until

pytestmark = pytest.mark.slow

serve = e2e.serve  # fixtures: a `gitreg serve` process, the registry's bare remote
remote = e2e.remote

V1 = "v2025-07-01--10h00"
V2 = "v2025-07-02--10h00"
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
    assert e2e.close(r.json()["outputs"], want[0]) and len(r.json()["outputs"]) == 2
    r = post(server, {"inputs": [row, row]})
    assert r.status_code == 200 and e2e.close(r.json()["outputs"], want * 2)

    # the model failing on inputs that fit: a 500 with one line, no interpreter traceback
    r = post(server, {"inputs": [[500.0, 500.0, 1.0, 1.0]]})
    assert r.status_code == 500
    detail = r.json()["detail"]
    assert "picky: this row sums over 1000" in detail and V2 in detail, detail
    assert "\n" not in detail and "Traceback" not in r.text and 'File "' not in r.text, r.text
    assert server.metric("gitreg_requests_total", model="policy", version=V2, outcome="error") == 1
    m = server.model()  # a model fault counts (1 of 3 requests, under --min-requests: not judged yet)
    assert m["served"] == V2 and m["stats"][V2]["requests"] == 3
