"""The HTTP side of `gitreg serve` (FastAPI): predict, health, readiness, models, metrics, webhook,
and /docs (Swagger UI from the swagger-ui-bundle package's files, served here: no CDN). Beside
gitreg's own /predict it speaks the Open Inference Protocol V2 (``/v2/...``), MLflow's scoring
convention (``/invocations``, ``/ping``) and Kubernetes' probe names (``/livez``, ``/readyz``);
every protocol's request becomes the same batch on the same inference path (``answer``: limits,
width checks, metrics, canary routing, fallback judging), only its body is read and written
differently (``gitreg.serve.protocols``).

Predictions run on the version the request was routed to; a swap never fails a request because
the request holds its own reference to that version. A version whose forward passes take well
under a millisecond runs on the event loop (a hop to a worker thread and back would cost more
than the pass); a slower one runs in the threadpool, so the loop keeps answering meanwhile.

/predict is the hot path: the body is parsed and checked by hand (no pydantic model per
request), the metric children of each (model, version) are looked up once, and the answer is
serialized straight to bytes. The pydantic models below only document it in the OpenAPI schema.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from json import dumps, loads
from time import perf_counter
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from gitreg.serve.agent import Agent
from gitreg.serve.config import MAX_WEBHOOK_BYTES, ServeOptions
from gitreg.serve.health import build_report, iso, redact
from gitreg.serve.metrics import Metrics
from gitreg.serve.protocols import (
    DATATYPES,
    V2_INPUT,
    V2_OUTPUT,
    V2Request,
    mlflow_inputs,
    v2_batch,
    v2_request,
    v2_response,
)
from gitreg.serve.runtime import BadInput, as_batch, check_inputs
from gitreg.serve.slots import ModelSlot, NotServing, Served
from gitreg.serve.webhooks import Deliveries, delivery_id, signed
from gitreg.version import __version__

__all__ = ["MAX_WEBHOOK_BYTES", "ServeOptions", "create_app", "health_report", "redact"]

log = logging.getLogger("gitreg.serve")

INLINE_SECONDS = 0.0005  # a forward pass expected to take less runs on the event loop
PARSE_INLINE_BYTES = 64 * 1024  # a larger body is parsed and checked in a worker thread
EWMA_WEIGHT = 0.1  # of the latest forward pass in a version's running estimate
DOCS_ASSETS = "/docs/assets"  # Swagger UI's own files (JavaScript, CSS, icons)


class PredictRequest(BaseModel):
    inputs: list[Any] = Field(
        description="A batch: one observation per item, each shaped like the model's input; or one "
        "observation on its own (nested as deep as the model's input shape), a batch of one."
    )


class PredictResponse(BaseModel):
    outputs: Any = Field(
        description="One output per observation; for one observation on its own, its output."
    )
    model: str
    version: str


class V2Tensor(BaseModel):
    name: str = Field(description=f"{V2_INPUT!r}, the model's one input (see /v2/models/{{model}})")
    shape: list[int] = Field(description="The batch first, then the model's input shape")
    datatype: str = Field(description=f"One of {', '.join(DATATYPES)} (the policy runs in float32)")
    data: list[Any] = Field(description="Row-major: flat, or nested exactly as the shape")


class V2InferRequest(BaseModel):
    id: str | None = Field(None, description="Echoed in the answer")
    inputs: list[V2Tensor] = Field(description="One tensor")


class V2OutputTensor(BaseModel):
    name: str = Field(description=V2_OUTPUT)
    shape: list[int]
    datatype: str
    data: list[Any] = Field(description="Flat, row-major")


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str = Field(description="The tag name of the version that answered")
    id: str | None = None
    outputs: list[V2OutputTensor]


class MLflowRequest(BaseModel):
    inputs: list[Any] | None = Field(None, description="A batch (or one observation on its own)")
    instances: list[Any] | None = Field(None, description="The same, TF Serving's name (one of the two)")


class MLflowResponse(BaseModel):
    predictions: list[Any] = Field(description="One output per observation")


def _detail(description: str, key: str = "detail") -> dict[str, Any]:
    schema = {"type": "object", "properties": {key: {"type": "string"}}}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its ``$defs`` put in place of their ``$ref``s: inside the OpenAPI
    document a ``#/$defs/...`` reference would point at nothing (the models are not recursive)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return dict(resolve(schema))


def _raw_route(request: type[BaseModel], response: type[BaseModel], key: str = "detail") -> dict[str, Any]:
    """The OpenAPI of a route that takes and returns raw JSON (parsed and checked by hand)."""
    return {
        "response_class": Response,
        "responses": {
            200: {"model": response, "description": "The outputs and the version that computed them"},
            401: _detail("Missing or wrong bearer token (when the server has one)", key),
            404: _detail("No such model (or version) here", key),
            413: _detail("The body is larger than --max-body-bytes", key),
            422: _detail("The body or its inputs do not fit the model", key),
            500: _detail("The model failed on these inputs", key),
            503: _detail("Nothing loaded yet", key),
        },
        "openapi_extra": {
            "parameters": [
                {
                    "name": "authorization",
                    "in": "header",
                    "required": False,
                    "description": "Bearer <token>, when the server runs with --token-env",
                    "schema": {"type": "string"},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _inline(request.model_json_schema())}},
            },
        },
    }


PREDICT_ROUTE = _raw_route(PredictRequest, PredictResponse)
V2_INFER_ROUTE = _raw_route(V2InferRequest, V2InferResponse, "error")
MLFLOW_ROUTE = _raw_route(MLflowRequest, MLflowResponse, "message")
Render = Callable[[Any], bytes]  # a batch's outputs -> the answer's body


class _Hot:
    """What /predict needs per (model, version), made once: the metric children and the
    JSON tail of the answer."""

    __slots__ = ("error", "latency", "ok", "rejected", "tail")

    def __init__(self, metrics: Metrics, model: str, version: str) -> None:
        self.ok = metrics.requests.labels(model=model, version=version, outcome="ok")
        self.error = metrics.requests.labels(model=model, version=version, outcome="error")
        self.rejected = metrics.requests.labels(model=model, version=version, outcome="rejected")
        self.latency = metrics.latency.labels(model=model, version=version)
        self.tail = f',"model":{dumps(model)},"version":{dumps(version)}}}'.encode()


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """The request body, or a 413 as soon as it is known to be over ``limit`` bytes: from its
    Content-Length before a byte is read, else while a chunked body streams in."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise HTTPException(413, f"{what} is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"{what} is larger than {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:  # gone mid-body (or cut off at --body-timeout): nobody to answer
        raise HTTPException(400, f"{what} ended early: the client disconnected") from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _decode(raw: bytes, reader: Callable[[Any], Any]) -> Any:
    """A body read as JSON whatever its Content-Type says (``curl -d`` sends a form's), then
    by ``reader`` (the protocol's); a 422 naming what is wrong."""
    try:
        body = loads(raw)
    except (ValueError, RecursionError) as e:  # ValueError: bad JSON, or an int of > 4300 digits
        raise HTTPException(422, f"the body is not valid JSON: {str(e)[:200]}") from None
    try:
        return reader(body)
    except BadInput as e:
        raise HTTPException(422, str(e)) from None


def _predict_inputs(body: Any) -> list[Any]:
    """The ``inputs`` of a /predict body (a JSON object)."""
    if not isinstance(body, dict) or "inputs" not in body:
        raise BadInput('the body must be a JSON object with "inputs" (a batch of observations)')
    inputs = body["inputs"]
    if not isinstance(inputs, list):
        raise BadInput("inputs must be a non-empty list (a batch of observations)")
    return inputs


def _error_body(path: str, status: int, detail: Any) -> dict[str, Any] | None:
    """An error in the shape of the protocol of ``path``: V2's ``{"error"}``, MLflow's
    ``{"error_code", "message"}``; ``None``: gitreg's own ``{"detail"}``."""
    if path == "/v2" or path.startswith("/v2/"):
        return {"error": str(detail)}
    if path in ("/invocations", "/ping"):
        return {"error_code": "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR", "message": str(detail)}
    return None


def create_app(agent: Agent, options: ServeOptions | None = None, *, manage_agent: bool = True) -> FastAPI:
    opts = options or ServeOptions()
    metrics = agent.metrics

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_agent:
            agent.start()
        try:
            yield
        finally:
            if manage_agent:
                agent.stop()

    app = FastAPI(
        title="gitreg serve",
        description="Serves the production (and canary) version of each followed model from models.yaml.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's /docs loads Swagger UI from a CDN: served from local files below
        redoc_url=None,  # ReDoc would too, and no package ships it: not served
    )
    mount_docs(app)

    def authorize(authorization: str | None) -> None:
        if opts.token is None:
            return
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), opts.token.encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    deliveries = Deliveries()
    hot: dict[tuple[str, str], _Hot] = {}  # per (model, version): metric children, JSON tail

    def hot_path(model: str, version: str) -> _Hot:
        h = hot.get((model, version))
        if h is None:
            h = hot.setdefault((model, version), _Hot(metrics, model, version))
        return h

    def infer(slot: ModelSlot, served: Served, h: _Hot, inputs: list[Any], render: Render) -> bytes:
        """Run the model, count and time the request; the response body. Inline or in a worker.
        Only here, on inputs that fit, does a failure count against the version (a model fault)."""
        t0 = perf_counter()
        try:
            outputs = served.predict(inputs)
        except Exception as e:
            elapsed = perf_counter() - t0
            h.error.inc()
            judge(slot, served, False, elapsed)
            raise HTTPException(500, f"{served.version} failed on these inputs: {one_line(e)}") from None
        elapsed = perf_counter() - t0
        h.ok.inc()
        h.latency.observe(elapsed)
        judge(slot, served, True, elapsed)
        per_row, guess = elapsed / len(inputs), served.predict_seconds
        served.predict_seconds = per_row if guess is None else guess + EWMA_WEIGHT * (per_row - guess)
        return render(outputs)

    def predict_body(slot: ModelSlot, served: Served, h: _Hot, single: bool) -> Render:
        def render(outputs: Any) -> bytes:
            if single:
                outputs = outputs[0]
            try:
                text = dumps(outputs, separators=(",", ":"), allow_nan=False)
                return b'{"outputs":' + text.encode() + h.tail
            except (TypeError, ValueError):  # NaN/inf (null in JSON) or a type json does not know
                return (
                    PredictResponse(outputs=outputs, model=slot.name, version=served.version)
                    .model_dump_json()
                    .encode()
                )

        return render

    def judge(slot: ModelSlot, served: Served, ok: bool, elapsed: float) -> None:
        event = slot.record(served, ok, elapsed)
        if event is not None:
            metrics.fallbacks.labels(model=slot.name, role=event.role).inc()
            agent.publish(slot)
            log.warning(
                "%s: %s %s fell back (%s)", slot.name, event.role, event.version, event.reason,
                extra={"event": "fallback", "model": slot.name, "version": event.version, "role": event.role},
            )  # fmt: skip

    def model_slot(model: str) -> ModelSlot:
        slot = agent.slot(model)
        if slot is None:
            raise HTTPException(404, f"model {model!r} is not served here (see /models)")
        return slot

    async def parse(request: Request, what: str, reader: Callable[[Any], Any]) -> Any:
        raw = await read_body(request, opts.max_body_bytes, what)
        if len(raw) > PARSE_INLINE_BYTES:  # a big body is parsed off the event loop
            return await run_in_threadpool(_decode, raw, reader)
        return _decode(raw, reader)

    def pick(slot: ModelSlot, version: str | None) -> Served:
        """The version that answers: routed (canary share, else production), or the named one."""
        if version is None:
            try:
                return slot.route()
            except NotServing:
                raise HTTPException(503, f"{slot.name} has no version loaded yet (see /health)") from None
        held = slot.served_versions()
        chosen = next((s for s in held if s.version == version), None)
        if chosen is None:
            names = ", ".join(s.version for s in held) or "none yet"
            raise HTTPException(404, f"{slot.name} {version} is not held here; held: {names}")
        return chosen

    async def answer(
        slot: ModelSlot, served: Served, prepare: Callable[[Served, _Hot], tuple[list[Any], Render]]
    ) -> Response:
        """The one inference path of every protocol: ``prepare`` makes the batch /predict would
        run and the protocol's renderer of its outputs; the checks, the metrics, the choice of
        the event loop or a worker, and the fallback judging are the same for all."""
        h = hot_path(slot.name, served.version)
        try:
            inputs, render = prepare(served, h)
            check_inputs(inputs, served.input_shape, opts.max_batch)
        except BadInput as e:  # the client's error: never counted against the version
            h.rejected.inc()
            raise HTTPException(422, str(e)) from None
        guess = served.predict_seconds
        if guess is not None and guess * len(inputs) <= INLINE_SECONDS:
            body = infer(slot, served, h, inputs, render)  # quicker than a hop to a worker and back
        else:
            body = await run_in_threadpool(infer, slot, served, h, inputs, render)
        # every answer says which stage of models.yaml (gitreg serve --stage) and version gave it
        headers = {"X-Gitreg-Stage": agent.config.stage, "X-Gitreg-Version": served.version}
        return Response(body, media_type="application/json", headers=headers)

    async def run(model: str, request: Request) -> Response:
        slot = model_slot(model)
        inputs = await parse(request, "the /predict body", _predict_inputs)

        def prepare(served: Served, h: _Hot) -> tuple[list[Any], Render]:
            batch, single = as_batch(inputs, served.input_shape)
            return batch, predict_body(slot, served, h, single)

        return await answer(slot, pick(slot, None), prepare)

    def default_model() -> str:
        model = agent.default_model()
        if model is None:
            raise HTTPException(503, "no model is followed yet (see /health)")
        return model

    @app.post("/predict", **PREDICT_ROUTE)
    async def predict(request: Request) -> Response:
        """Predict with the only (or first) followed model."""
        if opts.token is not None:
            authorize(request.headers.get("authorization"))
        return await run(default_model(), request)

    @app.post("/models/{model}/predict", **PREDICT_ROUTE)
    async def predict_model(model: str, request: Request) -> Response:
        """Predict with a named model."""
        if opts.token is not None:
            authorize(request.headers.get("authorization"))
        return await run(model, request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """Each protocol's errors in its own shape (one line, 4xx for the client's fault)."""
        route = request.scope.get("route")
        path = getattr(route, "path", None) or request.url.path
        body = _error_body(path, exc.status_code, exc.detail)
        if body is None:
            return await http_exception_handler(request, exc)
        return JSONResponse(body, exc.status_code, headers=getattr(exc, "headers", None))

    @app.get("/livez")
    @app.get("/health")
    def health() -> Response:
        """ok or degraded; per model the served and wanted versions, last sync, last error.
        The body is a ``gitreg.serve.health.HealthReport``."""
        body = build_report(agent, opts.stale_after).model_dump_json()
        return Response(body, media_type="application/json")

    @app.get("/ping")
    @app.get("/v2/health/ready")
    @app.get("/readyz")
    @app.get("/ready")
    def ready() -> JSONResponse:
        """200 once every followed model serves something."""
        waiting = agent.waiting()
        if not agent.slots or waiting:
            return JSONResponse({"ready": False, "waiting": waiting}, status_code=503)
        return JSONResponse({"ready": True})

    @app.get("/models")
    def models() -> dict[str, Any]:
        """The versions being served, with their metadata."""
        out: dict[str, Any] = {}
        for name, slot in agent.slots.items():
            roles = {"production": slot.production, "canary": slot.canary, "previous": slot.previous}
            out[name] = {
                role: {
                    "version": s.version,
                    "commit": s.commit,
                    "loaded_at": iso(s.loaded_at),
                    "metadata": s.metadata,
                    "input_shape": s.input_shape,  # one observation; None: any width
                    **({"traffic": slot.canary_traffic} if role == "canary" else {}),
                }
                for role, s in roles.items()
                if s is not None
            }
        return out

    @app.get("/v2")
    def v2_server() -> dict[str, Any]:
        """Open Inference Protocol V2 server metadata."""
        return {"name": "gitreg", "version": __version__, "extensions": []}

    @app.get("/v2/health/live")
    def v2_live() -> dict[str, Any]:
        """Open Inference Protocol V2 liveness: the process answers."""
        return {"live": True}

    @app.get("/v2/models/{model}/ready")
    def v2_model_ready(model: str) -> dict[str, Any]:
        """200 once the model serves a version (404: not followed here, 503: nothing loaded)."""
        pick(model_slot(model), None)
        return {"name": model, "ready": True}

    @app.get("/v2/models/{model}/versions/{version}/ready")
    def v2_version_ready(model: str, version: str) -> dict[str, Any]:
        """200 if the agent holds this version (404 naming those it holds otherwise)."""
        pick(model_slot(model), version)
        return {"name": model, "version": version, "ready": True}

    async def v2_infer(model: str, version: str | None, request: Request) -> Response:
        if opts.token is not None:
            authorize(request.headers.get("authorization"))
        slot = model_slot(model)
        if request.headers.get("inference-header-content-length") is not None:
            raise HTTPException(
                422,
                "binary tensor data is not supported: send the data as JSON "
                "(tritonclient: set_data_from_numpy(array, binary_data=False))",
            )
        req: V2Request = await parse(request, "the inference request", v2_request)

        def prepare(served: Served, _: _Hot) -> tuple[list[Any], Render]:
            def render(outputs: Any) -> bytes:
                return to_json(v2_response(slot.name, served.version, req.id, outputs))

            return v2_batch(req, served.input_shape), render

        return await answer(slot, pick(slot, version), prepare)

    @app.post("/v2/models/{model}/infer", **V2_INFER_ROUTE)
    async def v2_model_infer(model: str, request: Request) -> Response:
        """Open Inference Protocol V2 inference: routed like /predict (canary share included)."""
        return await v2_infer(model, None, request)

    @app.post("/v2/models/{model}/versions/{version}/infer", **V2_INFER_ROUTE)
    async def v2_model_version_infer(model: str, version: str, request: Request) -> Response:
        """Open Inference Protocol V2 inference on one version the agent holds (404 otherwise)."""
        return await v2_infer(model, version, request)

    @app.post("/invocations", **MLFLOW_ROUTE)
    async def invocations(request: Request) -> Response:
        """MLflow's scoring convention, on the only (or first) followed model:
        ``{"inputs": [...]}`` or ``{"instances": [...]}`` → ``{"predictions": [...]}``."""
        if opts.token is not None:
            authorize(request.headers.get("authorization"))
        slot = model_slot(default_model())
        inputs = await parse(request, "the /invocations body", mlflow_inputs)

        def prepare(served: Served, _: _Hot) -> tuple[list[Any], Render]:
            batch, _single = as_batch(inputs, served.input_shape)  # always answered as a batch
            return batch, lambda outputs: to_json({"predictions": outputs})

        return await answer(slot, pick(slot, None), prepare)

    @app.get("/v2/models/{model}")
    def v2_model(model: str) -> JSONResponse:
        """Open Inference Protocol V2 model metadata: the versions held (tag names, the served
        one first) and the input and output tensors, -1 for the batch dimension."""
        return _v2_metadata(model, None)

    @app.get("/v2/models/{model}/versions/{version}")
    def v2_model_version(model: str, version: str) -> JSONResponse:
        """Open Inference Protocol V2 metadata of one version the agent holds (404 otherwise)."""
        return _v2_metadata(model, version)

    def _v2_metadata(model: str, version: str | None) -> JSONResponse:
        slot = agent.slot(model)
        held = slot.served_versions() if slot is not None else []
        if not held:
            return JSONResponse({"error": f"model {model!r} is not served here (see /models)"}, 404)
        chosen = next((s for s in held if s.version == version), None) if version else held[0]
        if chosen is None:
            names = ", ".join(s.version for s in held)
            return JSONResponse({"error": f"{model} {version} is not held here; held: {names}"}, 404)
        shape = [-1, *chosen.input_shape] if chosen.input_shape else [-1, -1]
        return JSONResponse(
            {
                "name": model,
                "versions": [s.version for s in held] if version is None else [chosen.version],
                "platform": chosen.platform,
                "inputs": [{"name": "input", "datatype": "FP32", "shape": shape}],
                "outputs": [{"name": "output", "datatype": "FP32", "shape": [-1, -1]}],
            }
        )

    @app.get("/metrics")
    def prometheus() -> Response:
        """Prometheus metrics."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/hooks/git", status_code=202)
    async def webhook(request: Request) -> dict[str, Any]:
        """Sync soon. With a secret: GitHub's X-Hub-Signature-256, GitLab's X-Gitlab-Token or a
        Standard Webhooks signature. A replayed delivery id wakes nothing; a burst is one sync."""
        body = await read_body(request, MAX_WEBHOOK_BYTES, "webhook body")
        if opts.webhook_secret is not None and not signed(request.headers, body, opts.webhook_secret):
            raise HTTPException(401, "bad or missing webhook signature")
        delivery = delivery_id(request.headers)
        if delivery is not None and not deliveries.first(delivery):
            return {"sync": "duplicate delivery: ignored"}
        agent.wake(hook=True)
        return {"sync": "scheduled"}

    return app


def mount_docs(app: FastAPI) -> None:
    """``GET /docs``: Swagger UI over the app's OpenAPI, every file of it served by this server
    from the swagger-ui-bundle package (FastAPI's default page loads them from a CDN, and is
    blank on a machine without the internet)."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")  # behind a path-prefix proxy
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # no badge from validator.swagger.io
        )


def one_line(e: BaseException) -> str:
    """An exception as one line: its type and last non-blank line (a TorchScript error carries
    the interpreter's traceback above the message), no longer than 200 characters."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    import re

    text = lines[-1] if lines else ""
    if not re.match(r"[\w.]*(Error|Exception)\b", text):  # the last line already names its type
        text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text[:200]


def health_report(agent: Agent, opts: ServeOptions) -> dict[str, Any]:
    """The /health body as a plain dict (what the JSON decodes to); typed: ``health.build_report``."""
    return build_report(agent, opts.stale_after).model_dump(mode="json")
