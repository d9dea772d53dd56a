"""The standard inference protocols on the real `gitreg serve` over loopback, beside /predict:
the Open Inference Protocol V2 driven by its real client (tritonclient[http]), MLflow's
/invocations and /ping, and Kubernetes' /livez and /readyz. Real TorchScript policies, a real
registry pushed to a bare remote (the fixtures of tests/conftest.py and tests/serve/conftest.py)."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from gitreg.testing.bundles import ROW, close, expected_outputs
from gitreg.testing.repos import promote_pushed as promote
from gitreg.testing.repos import register_pushed as register
from gitreg.testing.server import NO_FALLBACK
from gitreg.testing.server import wait_for as wait_until

pytestmark = pytest.mark.slow

V1 = "v2025-07-01--10h00"
V2 = "v2025-07-02--10h00"
ROWS = [[0.5, -1.0, 2.0, 0.25], [1.0, 2.0, 3.0, 4.0], [-0.5, 0.0, 0.5, 1.0]]


def one_line_error(r: httpx.Response, key: str = "error") -> str:
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    message = r.json()[key]
    assert isinstance(message, str) and message and "\n" not in message and "Traceback" not in r.text
    return message


def test_open_inference_protocol_v2_with_the_real_client(registry, remote, make_bundle, serve):
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    b1, b2 = make_bundle(1), make_bundle(2)
    register(registry, b1, V1)
    register(registry, b2, V2)
    promote(registry, V1)
    server = serve(remote, "--poll", "0.5", "--max-batch", "8", *NO_FALLBACK)
    promote(registry, V2)
    wait_until(lambda: (m := server.model())["served"] == V2 and m["previous"] == V1, "V2", 120, server)

    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "gitreg" and "version" in meta and meta["extensions"] == []
    assert client.is_model_ready("policy") and client.is_model_ready("policy", V1)
    assert not client.is_model_ready("policy", "v2020-01-01--00h00")
    model = client.get_model_metadata("policy")
    assert model["name"] == "policy" and model["versions"] == [V2, V1], model
    assert model["platform"] == "pytorch_torchscript"
    assert model["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert model["outputs"][0]["name"] == "output" and model["outputs"][0]["shape"][0] == -1

    def infer(rows: Any, version: str = "", datatype: str = "FP32") -> Any:
        arr = np.array(rows, dtype={"FP32": np.float32, "FP64": np.float64, "INT64": np.int64}[datatype])
        tensor = triton.InferInput("input", list(arr.shape), datatype)
        tensor.set_data_from_numpy(arr, binary_data=False)
        out = [triton.InferRequestedOutput("output", binary_data=False)]
        return client.infer("policy", [tensor], model_version=version, outputs=out, request_id="req-7")

    # the answer equals /predict's for the same inputs, names the version, echoes the id
    result = infer(ROWS)
    body = result.get_response()
    assert (body["model_name"], body["model_version"], body["id"]) == ("policy", V2, "req-7"), body
    predicted = server.predict(ROWS).json()
    assert predicted["version"] == V2
    assert result.as_numpy("output").shape == (3, 2)
    assert close(result.as_numpy("output").tolist(), predicted["outputs"])
    assert close(predicted["outputs"], expected_outputs(b2, ROWS))
    # a named version answers itself (the previous one, still held)
    old = infer(ROWS, V1)
    assert old.get_response()["model_version"] == V1
    assert close(old.as_numpy("output").tolist(), expected_outputs(b1, ROWS))
    for datatype in ("FP64", "INT64"):
        ints = [[1, 2, 3, 4], [0, -1, 5, 2]]
        r = infer(ints, datatype=datatype)
        assert close(r.as_numpy("output").tolist(), server.predict(ints).json()["outputs"]), datatype
    # a version the agent does not hold: a clean error naming those it holds
    with pytest.raises(InferenceServerException) as e:
        infer(ROWS, "v2020-01-01--00h00")
    assert "not held" in str(e.value) and V2 in str(e.value) and V1 in str(e.value)
    with pytest.raises(InferenceServerException) as e:  # the client's default: binary data
        tensor = triton.InferInput("input", [1, 4], "FP32")
        tensor.set_data_from_numpy(np.array(ROW, dtype=np.float32))
        client.infer("policy", [tensor])
    assert "binary_data=False" in str(e.value)
    client.close()

    # plain JSON: nested data, and bad inputs: a 4xx with one line, never a 500
    url = server.url + "/v2/models/policy/infer"
    r = httpx.post(
        url, json={"inputs": [{"name": "input", "shape": [3, 4], "datatype": "FP32", "data": ROWS}]}
    )
    assert r.status_code == 200 and close(
        r.json()["outputs"][0]["data"], [x for row in predicted["outputs"] for x in row]
    )
    assert r.json()["outputs"][0]["shape"] == [3, 2] and "id" not in r.json()
    good = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ROW[0]}
    bad: list[tuple[dict[str, Any], str]] = [
        ({**good, "datatype": "BYTES"}, "datatype"),
        ({**good, "datatype": "INT32", "data": [0.5, 1, 2, 3]}, "integers"),
        ({**good, "shape": [2, 4]}, "needs 8"),
        ({**good, "shape": [1, 3], "data": [1, 2, 3]}, "[-1, 4]"),
        ({**good, "name": "obs"}, "'input'"),
        ({**good, "data": [[1, 2], [3, 4]]}, "nested"),
        ({**good, "shape": [9, 4], "data": [0.0] * 36}, "limit of 8"),
        ({**good, "data": ["a", 1, 2, 3]}, "numbers"),
        ({**good, "shape": [1, -4]}, "positive"),
    ]
    for tensor, words in bad:
        message = one_line_error(httpx.post(url, json={"inputs": [tensor]}, timeout=30))
        assert words in message, (tensor, message)
    for raw in (b"not json", b"[]", b'{"inputs": []}'):
        one_line_error(httpx.post(url, content=raw, timeout=30))
    assert "other" in one_line_error(
        httpx.post(server.url + "/v2/models/other/infer", json={"inputs": [good]})
    )
    assert server.metric("gitreg_requests_total", model="policy", version=V2, outcome="error") == 0
    assert (
        server.metric("gitreg_requests_total", model="policy", version=V2, outcome="rejected") == 2
    )  # the width and the batch: checked on the shared path


def test_mlflow_scoring_and_probe_aliases(registry, remote, make_bundle, serve):
    bundle = make_bundle(1)
    register(registry, bundle, V1)
    promote(registry, V1)
    server = serve(remote, "--poll", "0.5", *NO_FALLBACK)
    want = server.predict(ROWS).json()["outputs"]
    assert close(want, expected_outputs(bundle, ROWS))

    for key in ("inputs", "instances"):
        r = httpx.post(server.url + "/invocations", json={key: ROWS}, timeout=30)
        assert r.status_code == 200 and close(r.json()["predictions"], want), r.text
    r = httpx.post(server.url + "/invocations", json={"inputs": ROWS[0]}, timeout=30)  # one on its own
    assert r.status_code == 200 and close(r.json()["predictions"], want[:1])
    for body in ({"dataframe_split": {}}, {"inputs": [[1, 2]]}, {"inputs": ROWS, "instances": ROWS}):
        r = httpx.post(server.url + "/invocations", json=body, timeout=30)
        assert r.json()["error_code"] == "BAD_REQUEST"
        one_line_error(r, "message")

    # curl -d's form content type: the JSON body is still read as JSON
    form = {"content-type": "application/x-www-form-urlencoded"}
    raw = b'{"inputs": [[0.5, -1.0, 2.0, 0.25]]}'
    r = httpx.post(server.url + "/predict", content=raw, headers=form, timeout=30)
    assert r.status_code == 200 and close(r.json()["outputs"], want[:1]), r.text
    r = httpx.post(server.url + "/invocations", content=raw, headers=form, timeout=30)
    assert r.status_code == 200 and close(r.json()["predictions"], want[:1]), r.text

    assert server.get("/ping").status_code == 200
    assert server.get("/readyz").json() == server.get("/ready").json() == {"ready": True}
    live = server.get("/livez")
    assert live.status_code == 200 and live.json()["status"] == server.health()["status"] == "ok"
    schema = server.get("/openapi.json").json()
    for path in ("/v2/models/{model}/infer", "/invocations", "/livez", "/readyz", "/ping", "/v2"):
        assert path in schema["paths"], path
