"""The HTTP side of `gitreg serve` (FastAPI): predict, health, readiness, models, metrics, webhook.

Predictions run in the threadpool on the version the request was routed to; a swap never
fails a request because the request holds its own reference to that version.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from gitreg.serve.agent import Agent
from gitreg.serve.runtime import BadInput, check_inputs
from gitreg.serve.slots import NotServing, Served

MAX_WEBHOOK_BYTES = 1 << 20


@dataclass
class ServeOptions:
    token: str | None = None
    webhook_secret: str | None = None
    max_batch: int = 1024
    stale_after: float | None = None  # seconds without a successful sync before /health degrades


class PredictRequest(BaseModel):
    inputs: list[Any] = Field(
        description="A batch: one observation per item, each shaped like the model's input."
    )


class PredictResponse(BaseModel):
    outputs: list[Any]
    model: str
    version: str


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
    )

    def authorize(authorization: str | None) -> None:
        if opts.token is None:
            return
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), opts.token.encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    def run(model: str, body: PredictRequest) -> PredictResponse:
        slot = agent.slots.get(model)
        if slot is None:
            raise HTTPException(404, f"model {model!r} is not served here (see /models)")
        try:
            served: Served = slot.route()
        except NotServing:
            raise HTTPException(503, f"{model} has no version loaded yet (see /health)") from None
        try:
            check_inputs(body.inputs, served.input_shape, opts.max_batch)
        except BadInput as e:
            metrics.requests.labels(model=model, version=served.version, outcome="rejected").inc()
            raise HTTPException(422, str(e)) from None
        t0 = time.perf_counter()
        try:
            outputs = served.predict(body.inputs)
        except Exception as e:
            elapsed = time.perf_counter() - t0
            metrics.requests.labels(model=model, version=served.version, outcome="error").inc()
            event = slot.record(served, False, elapsed)
            if event is not None:
                metrics.fallbacks.labels(model=model, role=event.role).inc()
                agent._publish(slot)
            raise HTTPException(500, f"{served.version} failed: {type(e).__name__}: {str(e)[:200]}") from None
        elapsed = time.perf_counter() - t0
        metrics.requests.labels(model=model, version=served.version, outcome="ok").inc()
        metrics.latency.labels(model=model, version=served.version).observe(elapsed)
        event = slot.record(served, True, elapsed)
        if event is not None:
            metrics.fallbacks.labels(model=model, role=event.role).inc()
            agent._publish(slot)
        return PredictResponse(outputs=outputs, model=model, version=served.version)

    @app.post("/predict", response_model=PredictResponse)
    def predict(body: PredictRequest, authorization: str | None = Header(default=None)) -> PredictResponse:
        """Predict with the only (or first) followed model."""
        authorize(authorization)
        if not agent.slots:
            raise HTTPException(503, "no model is followed yet (see /health)")
        return run(next(iter(agent.slots)), body)

    @app.post("/models/{model}/predict", response_model=PredictResponse)
    def predict_model(
        model: str, body: PredictRequest, authorization: str | None = Header(default=None)
    ) -> PredictResponse:
        """Predict with a named model."""
        authorize(authorization)
        return run(model, body)

    @app.get("/health")
    def health() -> JSONResponse:
        """ok or degraded; per model the served and wanted versions, last sync, last error."""
        return JSONResponse(health_report(agent, opts))

    @app.get("/ready")
    def ready() -> JSONResponse:
        """200 once every followed model serves something."""
        waiting = [n for n, s in agent.slots.items() if s.production is None and s.canary is None]
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
                    "loaded_at": _iso(s.loaded_at),
                    "metadata": s.metadata,
                    **({"traffic": slot.canary_traffic} if role == "canary" else {}),
                }
                for role, s in roles.items()
                if s is not None
            }
        return out

    @app.get("/metrics")
    def prometheus() -> Response:
        """Prometheus metrics."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/hooks/git", status_code=202)
    async def webhook(request: Request) -> dict[str, Any]:
        """Sync now. With a secret: GitHub's X-Hub-Signature-256 or GitLab's X-Gitlab-Token."""
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_WEBHOOK_BYTES:
            raise HTTPException(413, f"webhook body larger than {MAX_WEBHOOK_BYTES} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_WEBHOOK_BYTES:
                raise HTTPException(413, f"webhook body larger than {MAX_WEBHOOK_BYTES} bytes")
        if opts.webhook_secret is not None and not _signed(request, body, opts.webhook_secret):
            raise HTTPException(401, "bad or missing webhook signature")
        agent.wake()
        return {"sync": "scheduled"}

    return app


def _signed(request: Request, body: bytes, secret: str) -> bool:
    sig = request.headers.get("x-hub-signature-256")
    if sig:
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(sig.encode(), expected.encode())
    token = request.headers.get("x-gitlab-token")
    if token:
        return hmac.compare_digest(token.encode(), secret.encode())
    return False


def redact(url: str) -> str:
    """A remote URL without its credentials (https://user:token@host/… -> https://***@host/…)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
    return url


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def health_report(agent: Agent, opts: ServeOptions) -> dict[str, Any]:
    st = agent.state
    models: dict[str, Any] = {}
    degraded = st.last_error is not None or st.last_sync is None
    if opts.stale_after and st.last_sync and time.time() - st.last_sync > opts.stale_after:
        degraded = True
    for name, slot in agent.slots.items():
        served = slot.production.version if slot.production else None
        canary = slot.canary.version if slot.canary else None
        ok = served == slot.wanted_production and canary == slot.wanted_canary and slot.last_error is None
        degraded = degraded or not ok
        stats = {}
        for s in slot.served_versions():
            vs = slot.stats.get(s.version)
            if vs is not None:
                n, err, p99 = vs.snapshot()
                stats[s.version] = {"requests": vs.total, "window": n, "error_rate": err, "p99_ms": p99}
        models[name] = {
            "served": served,
            "wanted": slot.wanted_production,
            "canary": {"served": canary, "wanted": slot.wanted_canary, "traffic": slot.canary_traffic},
            "previous": slot.previous.version if slot.previous else None,
            "last_error": slot.last_error,
            "rejected": dict(slot.rejected),
            "fallbacks": [
                {
                    "version": f.version,
                    "role": f.role,
                    "reason": f.reason,
                    "at": _iso(f.at),
                    "restored": f.restored,
                }
                for f in slot.fallbacks
            ],
            "stats": stats,
        }
    return {
        "status": "degraded" if degraded else "ok",
        "repo": redact(agent.config.repo),
        "branch": agent.config.branch,
        "commit": st.commit,
        "last_sync": _iso(st.last_sync),
        "last_attempt": _iso(st.last_attempt),
        "last_error": st.last_error,
        "sync_failures": st.failures,
        "models": models,
    }
