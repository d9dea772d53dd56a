"""The HTTP side of `gitreg serve` (FastAPI): predict, health, readiness, models, metrics, webhook,
and /docs (Swagger UI from the swagger-ui-bundle package's files, served here: no CDN).

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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from json import dumps, loads
from time import perf_counter
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from gitreg.serve.agent import Agent
from gitreg.serve.config import MAX_WEBHOOK_BYTES, ServeOptions
from gitreg.serve.health import build_report, iso, redact
from gitreg.serve.metrics import Metrics
from gitreg.serve.runtime import BadInput, as_batch, check_inputs
from gitreg.serve.slots import ModelSlot, NotServing, Served
from gitreg.serve.webhooks import Deliveries, delivery_id, signed

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


def _detail(description: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"detail": {"type": "string"}}}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


PREDICT_ROUTE: dict[str, Any] = {  # the OpenAPI of a route that takes and returns raw JSON
    "response_class": Response,
    "responses": {
        200: {"model": PredictResponse, "description": "The outputs and the version that computed them"},
        401: _detail("Missing or wrong bearer token (when the server has one)"),
        404: _detail("No such model here"),
        422: _detail("The body or its inputs do not fit the model"),
        500: _detail("The model failed on these inputs"),
        503: _detail("Nothing loaded yet"),
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
            "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
        },
    },
}


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


def _read_inputs(content_type: str | None, raw: bytes) -> list[Any]:
    """The ``inputs`` of a /predict body (a JSON object), or a 422."""
    if content_type != "application/json" and not _is_json(content_type):
        raise HTTPException(422, "the body must be JSON (Content-Type: application/json)")
    try:
        body = loads(raw)
    except (ValueError, RecursionError) as e:  # ValueError: bad JSON, or an int of > 4300 digits
        raise HTTPException(422, f"the body is not valid JSON: {str(e)[:200]}") from None
    if not isinstance(body, dict) or "inputs" not in body:
        raise HTTPException(422, 'the body must be a JSON object with "inputs" (a batch of observations)')
    inputs = body["inputs"]
    if not isinstance(inputs, list):
        raise HTTPException(422, "inputs must be a non-empty list (a batch of observations)")
    return inputs


def _is_json(content_type: str | None) -> bool:
    """application/json or application/*+json, parameters allowed (what FastAPI accepts)."""
    if not content_type:
        return False
    main, _, sub = content_type.partition(";")[0].strip().lower().partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


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

    def infer(slot: ModelSlot, served: Served, h: _Hot, inputs: list[Any], single: bool = False) -> bytes:
        """Run the model, count and time the request; the response body. Inline or in a worker.
        Only here, on inputs that fit, does a failure count against the version (a model fault)."""
        t0 = perf_counter()
        try:
            outputs = served.predict(inputs)
            if single:
                outputs = outputs[0]
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
        try:
            return b'{"outputs":' + dumps(outputs, separators=(",", ":"), allow_nan=False).encode() + h.tail
        except (TypeError, ValueError):  # NaN/inf (null in JSON) or a type json does not know
            return (
                PredictResponse(outputs=outputs, model=slot.name, version=served.version)
                .model_dump_json()
                .encode()
            )

    def judge(slot: ModelSlot, served: Served, ok: bool, elapsed: float) -> None:
        event = slot.record(served, ok, elapsed)
        if event is not None:
            metrics.fallbacks.labels(model=slot.name, role=event.role).inc()
            agent.publish(slot)
            log.warning(
                "%s: %s %s fell back (%s)", slot.name, event.role, event.version, event.reason,
                extra={"event": "fallback", "model": slot.name, "version": event.version, "role": event.role},
            )  # fmt: skip

    async def run(model: str, request: Request) -> Response:
        slot = agent.slot(model)
        if slot is None:
            raise HTTPException(404, f"model {model!r} is not served here (see /models)")
        raw = await read_body(request, opts.max_body_bytes, "the /predict body")
        if len(raw) > PARSE_INLINE_BYTES:  # a big body is parsed off the event loop
            inputs = await run_in_threadpool(_read_inputs, request.headers.get("content-type"), raw)
        else:
            inputs = _read_inputs(request.headers.get("content-type"), raw)
        try:
            served: Served = slot.route()
        except NotServing:
            raise HTTPException(503, f"{model} has no version loaded yet (see /health)") from None
        h = hot_path(model, served.version)
        inputs, single = as_batch(inputs, served.input_shape)
        try:
            check_inputs(inputs, served.input_shape, opts.max_batch)
        except BadInput as e:  # the client's error: never counted against the version
            h.rejected.inc()
            raise HTTPException(422, str(e)) from None
        guess = served.predict_seconds
        if guess is not None and guess * len(inputs) <= INLINE_SECONDS:
            body = infer(slot, served, h, inputs, single)  # quicker than a hop to a worker and back
        else:
            body = await run_in_threadpool(infer, slot, served, h, inputs, single)
        return Response(body, media_type="application/json")

    @app.post("/predict", **PREDICT_ROUTE)
    async def predict(request: Request) -> Response:
        """Predict with the only (or first) followed model."""
        if opts.token is not None:
            authorize(request.headers.get("authorization"))
        model = agent.default_model()
        if model is None:
            raise HTTPException(503, "no model is followed yet (see /health)")
        return await run(model, request)

    @app.post("/models/{model}/predict", **PREDICT_ROUTE)
    async def predict_model(model: str, request: Request) -> Response:
        """Predict with a named model."""
        if opts.token is not None:
            authorize(request.headers.get("authorization"))
        return await run(model, request)

    @app.get("/health")
    def health() -> Response:
        """ok or degraded; per model the served and wanted versions, last sync, last error.
        The body is a ``gitreg.serve.health.HealthReport``."""
        body = build_report(agent, opts.stale_after).model_dump_json()
        return Response(body, media_type="application/json")

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
