"""`gitreg rollback`: ``git revert`` of the commit that last moved a stage, computed as a
three-way merge of models.yaml without a working tree (or a restore of just that stage)."""

from __future__ import annotations

from typing import Any

from gitreg import catalog
from gitreg import manifest as mf
from gitreg.context import Context
from gitreg.errors import (
    AlreadyAtVersion,
    ArchivedRollbackTarget,
    GitregError,
    ModelNotFound,
    NoStageHistory,
    UnknownStage,
    VersionArchived,
    WrongModel,
)
from gitreg.gitrepo import CommitRecord
from gitreg.lifecycle.changes import ChangeResult, _apply, _branch_name, _manifest_at, _trailers, branch_base
from gitreg.lifecycle.history import manifest_history, stage_value

ROLLBACK_STAGES = ("staging", "production", "canary")


def rollback(
    ctx: Context,
    model: str,
    *,
    stage: str = "production",
    to: str | None = None,
    direct: bool = False,
    push: bool = False,
) -> ChangeResult:
    """Undo the last change of ``model``'s ``stage``: ``git revert`` of the commit that made it
    (or, when that commit changed other lines too, a commit restoring only this stage); ``to``
    sets an explicit older version instead."""
    if stage not in ROLLBACK_STAGES:
        raise UnknownStage(stage, "rollback")
    if push and not direct:
        push = False
    with ctx.lock():
        base_branch, base = branch_base(ctx)  # under the lock: a queued change builds on the one before
        m = _manifest_at(ctx, base)
        if model not in m.model.models:
            raise ModelNotFound(model)
        current = stage_value(m.model, model, stage)
        current_v = current[0] if current else None
        if to is not None:
            info = catalog.get(ctx, to)
            if info.model != model:
                raise WrongModel(to, info.model, model)
            if to in m.model.models[model].archived:
                raise VersionArchived(to)
            if current_v == to:
                raise AlreadyAtVersion(model, stage, to)
            if stage == "canary":
                traffic = current[1] if current else 10.0
                m.set_canary(model, to, traffic)
            else:
                m.set_stage(model, stage, to)
            message = f"rollback {model} {stage} to {to}\n\n{_trailers(model, stage, to, current_v)}\n"
            return _apply(
                ctx,
                action="rollback",
                model=model,
                stage=stage,
                version=to,
                previous=current_v,
                base_branch=base_branch,
                base=base,
                new_text=m.dumps().encode(),
                message=message,
                direct=direct,
                push=push,
                branch=_branch_name(model, f"rollback-{stage}", to),
                kind="to",
            )
        last = next(
            (
                (c, b, a)
                for c, b, a in manifest_history(ctx, base)
                if stage_value(b, model, stage) != stage_value(a, model, stage)
                and not (c.subject.startswith("Merge ") and len(c.parents) > 1)
            ),
            None,
        )
        if last is None:
            raise NoStageHistory(model, stage)
        commit, before, after = last
        old = stage_value(before, model, stage)
        old_v = old[0] if old else None
        if old_v is not None and old_v in m.model.models[model].archived:
            # restoring it would leave a manifest `gitreg check` refuses
            raise ArchivedRollbackTarget(old_v, model, stage, commit.sha)
        only_this = (
            len(commit.parents) == 1
            and ctx.git.changed_files(commit.sha) == [mf.MANIFEST_FILE]
            and _without(before, model, stage) == _without(after, model, stage)
        )
        branch = _branch_name(model, f"rollback-{stage}", old_v or "none")
        reverted = _revert_text(ctx, base, commit) if only_this else None
        if reverted is not None:
            message = (
                f'Revert "{commit.subject}"\n\nThis reverts commit {commit.sha}.\n\n'
                f"{_trailers(model, stage, old_v, current_v)}\n"
            )
            return _apply(
                ctx,
                action="rollback",
                model=model,
                stage=stage,
                version=old_v,
                previous=current_v,
                base_branch=base_branch,
                base=base,
                new_text=reverted,
                message=message,
                direct=direct,
                push=push,
                branch=branch,
                kind="revert",
                reverted=commit.sha,
            )
        # Later commits touched neighbouring lines: restore just this stage instead.
        if stage == "canary":
            m.set_canary(model, old[0] if old else None, old[1] if old else None)
        else:
            m.set_stage(model, stage, old_v)
        message = (
            f'Revert "{commit.subject}"\n\n'
            f"This restores only the {stage} stage of {model} as it was before {commit.sha[:12]};\n"
            f"the other changes of that commit are kept.\n\n"
            f"{_trailers(model, stage, old_v, current_v)}\n"
        )
        return _apply(
            ctx,
            action="rollback",
            model=model,
            stage=stage,
            version=old_v,
            previous=current_v,
            base_branch=base_branch,
            base=base,
            new_text=m.dumps().encode(),
            message=message,
            direct=direct,
            push=push,
            branch=branch,
            kind="restore",
            reverted=commit.sha,
        )


def _revert_text(ctx: Context, base: str, commit: CommitRecord) -> bytes | None:
    """models.yaml at ``base`` with ``commit`` (which changed only models.yaml) reverted: the
    three-way merge ``git revert`` makes. None on a conflict or an invalid result."""
    ours = ctx.git.read_file(base, mf.MANIFEST_FILE)
    at_commit = ctx.git.read_file(commit.sha, mf.MANIFEST_FILE)
    before = ctx.git.read_file(commit.parents[0], mf.MANIFEST_FILE)
    if ours is None or at_commit is None or before is None:
        return None
    merged = ctx.git.merge_texts(ours, at_commit, before)
    if merged is None:
        return None
    try:
        mf.loads_bytes(merged)
    except GitregError:
        return None
    return merged


def _without(m: mf.ManifestModel | None, model: str, stage: str) -> dict[str, Any]:
    data = m.model_dump() if m else {}
    entry = data.get("models", {}).get(model)
    if entry is not None:
        if stage == "canary":
            entry["canary"] = None
        else:
            entry["stages"].pop(stage, None)
    return data
