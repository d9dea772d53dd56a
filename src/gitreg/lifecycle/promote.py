"""`gitreg promote` / `deploy`: move a version to a stage, or make it the canary."""

from __future__ import annotations

from gitreg import catalog
from gitreg.context import Context
from gitreg.errors import (
    BadTraffic,
    CanaryStageConflict,
    NotValidated,
    ProductionVersion,
    StageRequired,
    UnknownStage,
    VersionArchived,
)
from gitreg.lifecycle.changes import ChangeResult, _apply, _branch_name, _manifest_at, _trailers, branch_base

PROMOTE_STAGES = ("staging", "production", "archived")


def promote(
    ctx: Context,
    version: str,
    stage: str | None,
    *,
    canary: float | None = None,
    direct: bool = False,
    push: bool = False,
    force: bool = False,
) -> ChangeResult:
    """Move ``version`` of its model to ``stage`` (staging, production, archived) or make it
    the canary with ``canary`` percent of traffic."""
    if canary is not None:
        if stage not in (None, "production", "canary"):
            raise CanaryStageConflict(version, stage)
        if not 0 <= canary <= 100:
            raise BadTraffic(canary)
        stage = "canary"
    if stage is None:
        raise StageRequired(version)
    if stage not in (*PROMOTE_STAGES, "canary"):
        raise UnknownStage(stage, "promote")
    if push and not direct:
        push = False  # the pull-request path always pushes its branch
    info = catalog.get(ctx, version)
    if stage in ("production", "canary") and info.status != "validated" and not force and ctx.fetch_notes():
        info = catalog.get(ctx, version)  # CI may have validated it since our last fetch
    model = info.model
    with ctx.lock():
        base_branch, base = branch_base(ctx)  # under the lock: a queued change builds on the one before
        m = _manifest_at(ctx, base)
        if model not in m.model.models:
            m.ensure_model(model, f"models/{model}")
        entry = m.model.models[model]
        if stage != "archived" and version in entry.archived:
            raise VersionArchived(
                version,
                "archived versions are retired: register the bundle again, or edit models.yaml in a PR",
            )
        if stage in ("production", "canary") and info.status != "validated" and not force:
            raise NotValidated(version, info.status, stage)
        if stage == "archived" and entry.stages.get("production") == version:
            raise ProductionVersion(version, model)
        before = m.model.model_dump()
        if stage == "canary":
            previous = m.set_canary(model, version, canary)
            label = f"canary ({canary:g}%)"
        elif stage == "archived":
            previous = None
            m.archive(model, version)
            label = "archived"
        else:
            previous = m.set_stage(model, stage, version)
            label = stage
            if stage == "production" and entry.canary and entry.canary.version == version:
                m.set_canary(model, None)  # the canary graduates: it no longer splits traffic
        if m.model.model_dump() == before:
            return ChangeResult(
                action="promote",
                model=model,
                stage=stage,
                version=version,
                previous=previous,
                changed=False,
                mode="direct" if direct else "pr",
                base=base_branch,
                branch=base_branch,
            )
        verb = "archive" if stage == "archived" else "promote"
        target = "" if stage == "archived" else f" to {label}"
        message = f"{verb} {model} {version}{target}\n\n{_trailers(model, stage, version, previous)}\n"
        return _apply(
            ctx,
            action="promote",
            model=model,
            stage=stage,
            version=version,
            previous=previous,
            base_branch=base_branch,
            base=base,
            new_text=m.dumps().encode(),
            message=message,
            direct=direct,
            push=push,
            branch=_branch_name(model, stage, version),
        )
