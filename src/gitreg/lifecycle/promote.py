"""`gitreg promote` / `deploy`: move a version to a stage, or make it the canary."""

from __future__ import annotations

from gitreg import catalog
from gitreg.context import Context
from gitreg.errors import GitregError
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
            raise GitregError(
                "--canary goes with production (or no stage)", f"gitreg promote {version} --canary PCT"
            )
        if not 0 <= canary <= 100:
            raise GitregError(f"canary traffic {canary:g} is not a percentage", "use 0 to 100")
        stage = "canary"
    if stage is None:
        raise GitregError(
            "which stage?", f"gitreg promote {version} staging|production|archived, or --canary PCT"
        )
    if stage not in (*PROMOTE_STAGES, "canary"):
        raise GitregError(f"unknown stage {stage!r}", "use staging, production or archived (or --canary PCT)")
    if push and not direct:
        push = False  # the pull-request path always pushes its branch
    info = catalog.get(ctx, version)
    model = info.model
    with ctx.lock():
        base_branch, base = branch_base(ctx)  # under the lock: a queued change builds on the one before
        m = _manifest_at(ctx, base)
        if model not in m.model.models:
            m.ensure_model(model, f"models/{model}")
        entry = m.model.models[model]
        if stage != "archived" and version in entry.archived:
            raise GitregError(
                f"{version} is archived",
                "archived versions are retired: register the bundle again, or edit models.yaml in a PR",
            )
        if stage in ("production", "canary") and info.status != "validated" and not force:
            raise GitregError(
                f"{version} has no passing validation record ({info.status})",
                f"run `gitreg validate {version} --record` (CI does it on tag push), or pass --force",
            )
        if stage == "archived" and entry.stages.get("production") == version:
            raise GitregError(
                f"{version} is the production version of {model}",
                "promote another version to production first",
            )
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
