"""The body of ``GET /health``: typed, built by the app from the agent's public state, parsed
by clients with ``HealthReport.model_validate_json(body)``.

Fields only ever get added (with defaults), so a client parses the body of an older or newer
server alike; unknown fields are ignored."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from gitreg.serve.agent import Agent


class VersionStatsReport(BaseModel):
    """The outcomes of one served version: all requests, and the sliding window's."""

    requests: int
    window: int
    error_rate: float
    p99_ms: float


class CanaryReport(BaseModel):
    served: str | None = None
    wanted: str | None = None
    traffic: float = 0.0


class FallbackReport(BaseModel):
    """A version replaced locally because it breached the thresholds."""

    version: str
    role: str  # production | canary
    reason: str
    at: str | None = None  # ISO 8601, UTC
    restored: str | None = None  # the version that took over (production), or None (canary)


class ModelHealth(BaseModel):
    served: str | None = None  # the production version served
    wanted: str | None = None  # the production version models.yaml names
    canary: CanaryReport = Field(default_factory=CanaryReport)
    previous: str | None = None
    last_error: str | None = None
    rejected: dict[str, str] = Field(default_factory=dict)  # version -> why it is not served
    fallbacks: list[FallbackReport] = Field(default_factory=list)
    stats: dict[str, VersionStatsReport] = Field(default_factory=dict)  # per served version
    # per served version: the shape of one observation (metadata's, else learned from the
    # model at load time); None: the model takes any width
    input_shapes: dict[str, list[int] | None] = Field(default_factory=dict)


class HealthReport(BaseModel):
    status: Literal["ok", "degraded"]
    repo: str  # without credentials
    branch: str
    stage: str = "production"  # the stage of models.yaml this agent serves (gitreg serve --stage)
    commit: str | None = None
    last_sync: str | None = None  # ISO 8601, UTC; None: never
    last_attempt: str | None = None
    last_error: str | None = None
    sync_failures: int = 0  # consecutive
    models: dict[str, ModelHealth] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def build_report(agent: Agent, stale_after: float | None = None) -> HealthReport:
    """ok, or degraded when a sync failed, none succeeded yet (or for ``stale_after`` seconds),
    or a model does not serve what models.yaml wants."""
    st = agent.state
    degraded = st.last_error is not None or st.last_sync is None
    if stale_after and st.last_sync and time.time() - st.last_sync > stale_after:
        degraded = True
    models: dict[str, ModelHealth] = {}
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
                stats[s.version] = VersionStatsReport(requests=vs.total, window=n, error_rate=err, p99_ms=p99)
        models[name] = ModelHealth(
            served=served,
            wanted=slot.wanted_production,
            canary=CanaryReport(served=canary, wanted=slot.wanted_canary, traffic=slot.canary_traffic),
            previous=slot.previous.version if slot.previous else None,
            last_error=slot.last_error,
            rejected=dict(slot.rejected),
            fallbacks=[
                FallbackReport(
                    version=f.version, role=f.role, reason=f.reason, at=iso(f.at), restored=f.restored
                )
                for f in list(slot.fallbacks)
            ],
            stats=stats,
            input_shapes={s.version: s.input_shape for s in slot.served_versions()},
        )
    return HealthReport(
        status="degraded" if degraded else "ok",
        repo=redact(agent.config.repo),
        branch=agent.config.branch,
        stage=agent.config.stage,
        commit=st.commit,
        last_sync=iso(st.last_sync),
        last_attempt=iso(st.last_attempt),
        last_error=st.last_error,
        sync_failures=st.failures,
        models=models,
    )


def redact(url: str) -> str:
    """A remote URL without its credentials (https://user:token@host/… -> https://***@host/…)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
    return url


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
