"""Making a models.yaml change: a commit on a new branch pushed for a pull request (review is
the approval) or, with ``direct``, a crash-safe commit on the current branch (see
:mod:`gitreg.journal`). Branch commits use a private index: the working tree is never touched."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from gitreg import manifest as mf
from gitreg.context import Context
from gitreg.errors import (
    DetachedHead,
    DirtyWorkingTree,
    GitError,
    GitregError,
    ManifestError,
    NoCommits,
    NoGitRemote,
    PushRefused,
)
from gitreg.journal import commit_manifest, uncommit_manifest

TRAILER_KEYS = ("Gitreg-Model", "Gitreg-Stage", "Gitreg-Version", "Gitreg-Previous")


class ChangeResult(BaseModel):
    action: Literal["promote", "rollback"]
    model: str
    stage: str
    version: str | None
    previous: str | None
    changed: bool
    mode: Literal["pr", "direct"]
    base: str
    branch: str
    commit: str | None = None
    pushed: bool = False
    remote: str | None = None
    pr_tool: str | None = None
    pr_url: str | None = None
    kind: str | None = None  # rollback: revert | restore | to
    reverted: str | None = None
    subject: str = ""


def _trailers(model: str, stage: str, version: str | None, previous: str | None) -> str:
    values = (model, stage, version or "none", previous or "none")
    return "\n".join(f"{k}: {v}" for k, v in zip(TRAILER_KEYS, values, strict=True))


def branch_base(ctx: Context) -> tuple[str, str]:
    """(current branch, its HEAD commit) to build a models.yaml change on; refuses a detached
    HEAD, an empty repository and an edited models.yaml."""
    branch = ctx.git.current_branch()
    if branch is None:
        raise DetachedHead()
    head = ctx.git.rev_parse("HEAD")
    if head is None:
        raise NoCommits()
    dirty = ctx.git.changed_paths([mf.MANIFEST_FILE])
    if dirty:
        raise DirtyWorkingTree(dirty)
    return branch, head


def _manifest_at(ctx: Context, rev: str) -> mf.Manifest:
    raw = ctx.git.read_file(rev, mf.MANIFEST_FILE)
    if raw is None:
        raise ManifestError(mf.MANIFEST_FILE, f"does not exist at {rev[:12]}", "run `gitreg init` first")
    return mf.loads_bytes(raw)


def _branch_name(model: str, stage: str, version: str) -> str:
    return f"gitreg/{model}-{stage}-{version}"


def _apply(
    ctx: Context,
    *,
    action: Literal["promote", "rollback"],
    model: str,
    stage: str,
    version: str | None,
    previous: str | None,
    base_branch: str,
    base: str,
    new_text: bytes,
    message: str,
    direct: bool,
    push: bool,
    branch: str,
    kind: str | None = None,
    reverted: str | None = None,
) -> ChangeResult:
    """Commit a new models.yaml (direct: here; else: on ``branch`` for a pull request)."""
    subject = message.splitlines()[0]
    remote = ctx.git.remote_name()
    result = ChangeResult(
        action=action,
        model=model,
        stage=stage,
        version=version,
        previous=previous,
        changed=True,
        mode="direct" if direct else "pr",
        base=base_branch,
        branch=base_branch if direct else branch,
        remote=remote,
        kind=kind,
        reverted=reverted,
        subject=subject,
    )
    if direct:
        result.commit = commit_manifest(ctx, base_branch, base, new_text, message)
        if push:
            _push_or_undo(ctx, result, base)
        return result
    result.commit = ctx.git.commit_file(base, mf.MANIFEST_FILE, new_text, message, branch=branch, create=True)
    return _publish(ctx, result, remote, base_branch, branch, message)


def _publish(
    ctx: Context, result: ChangeResult, remote: str | None, base_branch: str, branch: str, message: str
) -> ChangeResult:
    from gitreg import forge

    if remote is None:
        return result  # no remote: the branch stays local; the CLI says how to go on
    try:
        _push(ctx, remote, [f"refs/heads/{branch}:refs/heads/{branch}"])
    except GitregError:
        ctx.git.delete_branch(branch)  # a refusal leaves nothing behind: re-running works
        raise
    result.pushed = True
    title, _, body = message.partition("\n")
    pr = forge.open_pull_request(
        ctx.root, ctx.git.remote_url(remote), base_branch, branch, title, body.strip()
    )
    result.pr_tool, result.pr_url = pr.tool, pr.url
    return result


def _push_or_undo(ctx: Context, result: ChangeResult, base: str) -> None:
    """Push a direct commit; if the push is refused (the remote moved on) or fails, take the
    commit back so that nothing half-done stays here: after `git pull --rebase` a re-run makes
    it anew."""
    try:
        _push(ctx, result.remote, [f"HEAD:refs/heads/{result.base}"])
    except GitError as e:
        if result.commit:
            uncommit_manifest(ctx, result.base, result.commit, base)
        raise PushRefused(result.remote, result.base, e.message) from None
    result.pushed = True


def _push(ctx: Context, remote: str | None, refspecs: list[str]) -> None:
    if remote is None:
        raise NoGitRemote()
    ctx.git.push(remote, refspecs)
