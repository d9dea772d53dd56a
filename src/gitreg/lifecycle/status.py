"""`gitreg status`: per model, what each stage holds, its status and age, the last change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from gitreg import catalog
from gitreg.context import Context
from gitreg.lifecycle.history import StageChange, history

if TYPE_CHECKING:
    from gitreg.catalog import VersionInfo


class StageState(BaseModel):
    stage: str
    version: str
    status: str
    registered_at: datetime | None = None
    age_days: float | None = None
    traffic: float | None = None


class ModelStatus(BaseModel):
    model: str
    path: str
    stages: list[StageState] = Field(default_factory=list)
    versions: int = 0
    archived: int = 0
    latest: str | None = None
    last_change: StageChange | None = None


def status(ctx: Context, now: datetime | None = None) -> list[ModelStatus]:
    now = now or datetime.now(UTC)
    m = ctx.manifest()
    versions = catalog.versions(ctx)
    by_name = {v.version: v for v in versions}
    changes = history(ctx) if ctx.git.has_commits() else []
    result = []
    for name in sorted(set(m.model.models) | {v.model for v in versions}):
        entry = m.model.models.get(name)
        own = [v for v in versions if v.model == name]
        states = []
        if entry is not None:
            held = [(s, v, None) for s, v in entry.stages.items()]
            if entry.canary:
                held.append(("canary", entry.canary.version, entry.canary.traffic))
            for stage, v, traffic in held:
                info: VersionInfo | None = by_name.get(v)
                states.append(
                    StageState(
                        stage=stage,
                        version=v,
                        status=info.status if info else "missing",
                        registered_at=info.registered_at if info else None,
                        age_days=round((now - info.registered_at).total_seconds() / 86400, 2)
                        if info
                        else None,
                        traffic=traffic,
                    )
                )
        result.append(
            ModelStatus(
                model=name,
                path=entry.path if entry else f"models/{name}",
                stages=states,
                versions=len(own),
                archived=len(entry.archived) if entry else 0,
                latest=own[0].version if own else None,
                last_change=next((c for c in changes if c.model == name), None),
            )
        )
    return result
