"""The stage lifecycle in Git: promote, deploy, rollback, history, status and check.

Stages live in ``models.yaml``. A change is a commit on a new branch pushed for a pull request
(review is the approval) or, with ``direct``, a commit on the current branch. Branch commits
are made with a private index (the user's working tree, index and HEAD are never touched).
Rollback is ``git revert`` of the commit that last moved the stage (computed as a three-way
merge of models.yaml, without a working tree). The history of every stage is read back from
``git log -- models.yaml`` in two git calls.

Direct changes are crash-safe (see :func:`commit_manifest`): the commit comes first, made with a
private index and a compare-and-swap of the branch; the working tree follows under a journal in
``.git/gitreg/manifest-journal/`` that `gitreg doctor --fix` finishes if the process died.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, Field

from gitreg import manifest as mf
from gitreg.errors import DirtyWorkingTree, GitError, GitregError, ManifestError, ModelNotFound
from gitreg.gitrepo import CommitRecord

if TYPE_CHECKING:
    from gitreg.registry import Registry, VersionInfo

_T = TypeVar("_T")
PROMOTE_STAGES = ("staging", "production", "archived")
ROLLBACK_STAGES = ("staging", "production", "canary")
TRAILER_KEYS = ("Gitreg-Model", "Gitreg-Stage", "Gitreg-Version", "Gitreg-Previous")
_PR_PATTERNS = (
    re.compile(r"Merge pull request #(\d+)"),
    re.compile(r"\(#(\d+)\)\s*$"),
    re.compile(r"See merge request \S*!(\d+)"),
)


# -- results -----------------------------------------------------------------------------------
class StageChange(BaseModel):
    model: str
    stage: str
    version: str | None  # what the stage holds after the change (None: cleared)
    previous: str | None
    traffic: float | None = None
    commit: str
    author: str
    date: datetime
    subject: str
    merge: str | None = None
    pull_request: int | None = None


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


class Problem(BaseModel):
    message: str
    line: int | None = None
    model: str | None = None


class CheckReport(BaseModel):
    ok: bool
    file: str = mf.MANIFEST_FILE
    base: str | None = None
    models: int = 0
    problems: list[Problem] = Field(default_factory=list)


# -- reading the manifest's history --------------------------------------------------------------
StageValue = tuple[str, float | None] | None  # (version, traffic for canary) or None


def stage_value(m: mf.ManifestModel | None, model: str, stage: str) -> StageValue:
    entry = m.models.get(model) if m else None
    if entry is None:
        return None
    if stage == "canary":
        return (entry.canary.version, entry.canary.traffic) if entry.canary else None
    v = entry.stages.get(stage)
    return (v, None) if v else None


def _stages_of(m: mf.ManifestModel | None, model: str) -> set[str]:
    entry = m.models.get(model) if m else None
    if entry is None:
        return set()
    return set(entry.stages) | ({"canary"} if entry.canary else set())


def _parse_manifest(raw: bytes | None) -> mf.ManifestModel | None:
    if raw is None:
        return None
    try:
        return mf.loads(raw.decode()).model
    except (ManifestError, UnicodeDecodeError):
        return None


def manifest_history(
    reg: Registry, rev: str
) -> list[tuple[CommitRecord, mf.ManifestModel | None, mf.ManifestModel | None]]:
    """(commit, manifest before it, manifest after it) for each commit that touched
    models.yaml, newest first: two git calls whatever the history's length."""
    log = reg.git.log_file(rev, mf.MANIFEST_FILE)
    keys = []
    for c in log:
        keys.append(f"{c.sha}:{mf.MANIFEST_FILE}")
        if c.parents:
            keys.append(f"{c.parents[0]}:{mf.MANIFEST_FILE}")
    blobs = reg.git.read_objects(keys)
    parsed: dict[str, mf.ManifestModel | None] = {k: _parse_manifest(v) for k, v in blobs.items()}
    out = []
    for c in log:
        after = parsed.get(f"{c.sha}:{mf.MANIFEST_FILE}")
        before = parsed.get(f"{c.parents[0]}:{mf.MANIFEST_FILE}") if c.parents else None
        out.append((c, before, after))
    return out


def _pr_number(*subjects: str) -> int | None:
    for text in subjects:
        for pattern in _PR_PATTERNS:
            m = pattern.search(text)
            if m:
                return int(m.group(1))
    return None


def history(reg: Registry, model: str | None = None, rev: str = "HEAD") -> list[StageChange]:
    """Every stage change (of one model or all), newest first, with the PR merge when visible."""
    if reg.git.rev_parse(rev) is None:
        return []
    changes: list[StageChange] = []
    for c, before, after in manifest_history(reg, rev):
        if c.subject.startswith("Merge ") and len(c.parents) > 1:
            continue  # a merge repeats its branch's change; the branch commit is reported
        names = set(after.models if after else {}) | set(before.models if before else {})
        for name in sorted(names):
            if model is not None and name != model:
                continue
            for stage in sorted(_stages_of(before, name) | _stages_of(after, name)):
                old, new = stage_value(before, name, stage), stage_value(after, name, stage)
                if old == new:
                    continue
                changes.append(
                    StageChange(
                        model=name,
                        stage=stage,
                        version=new[0] if new else None,
                        previous=old[0] if old else None,
                        traffic=new[1] if new else None,
                        commit=c.sha,
                        author=c.author,
                        date=c.date,
                        subject=c.subject,
                    )
                )
            old_arch = set(before.models[name].archived) if before and name in before.models else set()
            new_arch = set(after.models[name].archived) if after and name in after.models else set()
            for v in sorted(new_arch - old_arch):
                changes.append(
                    StageChange(
                        model=name,
                        stage="archived",
                        version=v,
                        previous=None,
                        commit=c.sha,
                        author=c.author,
                        date=c.date,
                        subject=c.subject,
                    )
                )
    if changes:
        line = reg.git.first_parent_line(rev)
        merges: dict[str, CommitRecord | None] = {}
        for ch in changes:
            if ch.commit not in line and ch.commit not in merges:
                merges[ch.commit] = reg.git.merge_that_brought(ch.commit, rev)
            merge = merges.get(ch.commit)
            ch.merge = merge.sha if merge else None
            # GitLab writes "See merge request group/repo!12" in the merge's body, not its subject
            ch.pull_request = _pr_number(
                merge.subject if merge else "", ch.subject, merge.body if merge else ""
            )
    return changes


# -- making a change -------------------------------------------------------------------------------
def _trailers(model: str, stage: str, version: str | None, previous: str | None) -> str:
    values = (model, stage, version or "none", previous or "none")
    return "\n".join(f"{k}: {v}" for k, v in zip(TRAILER_KEYS, values, strict=True))


def branch_base(reg: Registry) -> tuple[str, str]:
    """(current branch, its HEAD commit) to build a models.yaml change on; refuses a detached
    HEAD, an empty repository and an edited models.yaml."""
    branch = reg.git.current_branch()
    if branch is None:
        raise GitregError(
            "HEAD is detached", "check out the branch models.yaml lives on (e.g. git switch main)"
        )
    head = reg.git.rev_parse("HEAD")
    if head is None:
        raise GitregError("this repository has no commits yet", "run `gitreg init` first")
    dirty = reg.git.changed_paths([mf.MANIFEST_FILE])
    if dirty:
        raise DirtyWorkingTree(dirty)
    return branch, head


def _manifest_at(reg: Registry, rev: str) -> mf.Manifest:
    raw = reg.git.read_file(rev, mf.MANIFEST_FILE)
    if raw is None:
        raise ManifestError(mf.MANIFEST_FILE, f"does not exist at {rev[:12]}", "run `gitreg init` first")
    return mf.loads(raw.decode(errors="replace"))


def _branch_name(model: str, stage: str, version: str) -> str:
    return f"gitreg/{model}-{stage}-{version}"


def _apply(
    reg: Registry,
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
    remote = reg.git.remote_name()
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
        result.commit = commit_manifest(reg, base_branch, base, new_text, message)
        if push:
            _push_or_undo(reg, result, base)
        return result
    result.commit = reg.git.commit_file(base, mf.MANIFEST_FILE, new_text, message, branch=branch, create=True)
    return _publish(reg, result, remote, base_branch, branch, message)


def _publish(
    reg: Registry, result: ChangeResult, remote: str | None, base_branch: str, branch: str, message: str
) -> ChangeResult:
    from gitreg import forge

    if remote is None:
        return result  # no remote: the branch stays local; the CLI says how to go on
    try:
        _push(reg, remote, [f"refs/heads/{branch}:refs/heads/{branch}"])
    except GitregError:
        reg.git.delete_branch(branch)  # a refusal leaves nothing behind: re-running works
        raise
    result.pushed = True
    title, _, body = message.partition("\n")
    pr = forge.open_pull_request(
        reg.root, reg.git.remote_url(remote), base_branch, branch, title, body.strip()
    )
    result.pr_tool, result.pr_url = pr.tool, pr.url
    return result


def _push_or_undo(reg: Registry, result: ChangeResult, base: str) -> None:
    """Push a direct commit; if the push is refused (the remote moved on) or fails, take the
    commit back so that nothing half-done stays here: after `git pull --rebase` a re-run makes
    it anew."""
    try:
        _push(reg, result.remote, [f"HEAD:refs/heads/{result.base}"])
    except GitError as e:
        if result.commit:
            uncommit_manifest(reg, result.base, result.commit, base)
        raise GitregError(
            f"push to {result.remote} refused, nothing changed ({e.message})",
            f"another change reached {result.base} first: git pull --rebase, then re-run",
        ) from None
    result.pushed = True


def _push(reg: Registry, remote: str | None, refspecs: list[str]) -> None:
    if remote is None:
        raise GitregError("--push: this repository has no Git remote", "add one: git remote add origin URL")
    reg.git.push(remote, refspecs)


def promote(
    reg: Registry,
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
    info = reg.get(version)
    model = info.model
    with reg.lock():
        base_branch, base = branch_base(reg)  # under the lock: a queued change builds on the one before
        m = _manifest_at(reg, base)
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
            reg,
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


def rollback(
    reg: Registry,
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
        raise GitregError(f"cannot roll back stage {stage!r}", "use production, staging or canary")
    if push and not direct:
        push = False
    with reg.lock():
        base_branch, base = branch_base(reg)  # under the lock: a queued change builds on the one before
        m = _manifest_at(reg, base)
        if model not in m.model.models:
            raise ModelNotFound(model)
        current = stage_value(m.model, model, stage)
        current_v = current[0] if current else None
        if to is not None:
            info = reg.get(to)
            if info.model != model:
                raise GitregError(
                    f"{to} is a version of {info.model}, not {model}", "pick a version of this model"
                )
            if to in m.model.models[model].archived:
                raise GitregError(f"{to} is archived", "pick a version that is not archived")
            if current_v == to:
                raise GitregError(f"{model} {stage} is already {to}", "nothing to roll back")
            if stage == "canary":
                traffic = current[1] if current else 10.0
                m.set_canary(model, to, traffic)
            else:
                m.set_stage(model, stage, to)
            message = f"rollback {model} {stage} to {to}\n\n{_trailers(model, stage, to, current_v)}\n"
            return _apply(
                reg,
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
                for c, b, a in manifest_history(reg, base)
                if stage_value(b, model, stage) != stage_value(a, model, stage)
                and not (c.subject.startswith("Merge ") and len(c.parents) > 1)
            ),
            None,
        )
        if last is None:
            raise GitregError(
                f"no commit ever changed the {stage} stage of {model}",
                f"set one explicitly: gitreg rollback {model} --stage {stage} --to VERSION",
            )
        commit, before, after = last
        old = stage_value(before, model, stage)
        old_v = old[0] if old else None
        if old_v is not None and old_v in m.model.models[model].archived:
            raise GitregError(  # restoring it would leave a manifest `gitreg check` refuses
                f"{old_v}, the {stage} version before {commit.sha[:12]}, is archived",
                f"pick another version: gitreg rollback {model} --stage {stage} --to VERSION",
            )
        only_this = (
            len(commit.parents) == 1
            and reg.git.changed_files(commit.sha) == [mf.MANIFEST_FILE]
            and _without(before, model, stage) == _without(after, model, stage)
        )
        branch = _branch_name(model, f"rollback-{stage}", old_v or "none")
        reverted = _revert_text(reg, base, commit) if only_this else None
        if reverted is not None:
            message = (
                f'Revert "{commit.subject}"\n\nThis reverts commit {commit.sha}.\n\n'
                f"{_trailers(model, stage, old_v, current_v)}\n"
            )
            return _apply(
                reg,
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
            reg,
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


def _revert_text(reg: Registry, base: str, commit: CommitRecord) -> bytes | None:
    """models.yaml at ``base`` with ``commit`` (which changed only models.yaml) reverted: the
    three-way merge ``git revert`` makes. None on a conflict or an invalid result."""
    ours = reg.git.read_file(base, mf.MANIFEST_FILE)
    at_commit = reg.git.read_file(commit.sha, mf.MANIFEST_FILE)
    before = reg.git.read_file(commit.parents[0], mf.MANIFEST_FILE)
    if ours is None or at_commit is None or before is None:
        return None
    merged = reg.git.merge_texts(ours, at_commit, before)
    if merged is None:
        return None
    try:
        mf.loads(merged.decode())
    except (GitregError, UnicodeDecodeError):
        return None
    return merged


# -- crash-safe manifest commits ---------------------------------------------------------------
#: Where a direct models.yaml change is killed in tests (``GITREG_TEST_CRASH_AT``).
MANIFEST_CRASH_POINTS = ("manifest-journaled", "manifest-committed", "manifest-written")


def manifest_journal_dir(reg: Registry) -> Path:
    return reg.git.git_dir / "gitreg" / "manifest-journal"


def _write_manifest_journal(reg: Registry, branch: str, old: bytes, new: bytes, what: str) -> Path:
    path = manifest_journal_dir(reg) / f"{os.getpid()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "what": what,
        "branch": branch,
        "old_blob": reg.git.blob_id(old),
        "new_blob": reg.git.blob_id(new),
        "pid": os.getpid(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    mf.atomic_write(path, json.dumps(entry).encode())
    return path


def sync_manifest(reg: Registry, text: bytes) -> None:
    """Bring the working tree's models.yaml (atomically) and the index to ``text``."""
    mf.atomic_write(reg.manifest_path, text)
    reg.git.stage([mf.MANIFEST_FILE])


def _move_manifest(
    reg: Registry, branch: str, old: bytes, new: bytes, what: str, move: Callable[[], _T]
) -> _T:
    """Run ``move`` (which moves ``branch``) under a journal, then sync the working tree to
    ``new``. A failure before the branch moved leaves nothing behind; a kill after it leaves
    the journal, for `gitreg doctor --fix` to bring models.yaml in step with HEAD."""
    from gitreg.registry import _checkpoint

    journal = _write_manifest_journal(reg, branch, old, new, what)
    try:
        _checkpoint("manifest-journaled")
        out = move()
    except BaseException:
        journal.unlink(missing_ok=True)
        raise
    _checkpoint("manifest-committed")
    sync_manifest(reg, new)
    _checkpoint("manifest-written")
    journal.unlink(missing_ok=True)
    return out


def commit_manifest(reg: Registry, branch: str, base: str, new_text: bytes, message: str) -> str:
    """Commit ``new_text`` as models.yaml on ``branch``, which must still be at ``base``
    (compare-and-swap: a concurrent change is never overwritten), then bring the index and the
    working tree along. The commit comes first, with a private index, so a kill at any point
    leaves the old commit or the new one, never a half-written or uncommitted models.yaml that
    nothing accounts for."""
    old = reg.git.read_file(base, mf.MANIFEST_FILE) or b""

    def commit() -> str:
        return reg.git.commit_file(base, mf.MANIFEST_FILE, new_text, message, branch=branch, create=False)

    return _move_manifest(reg, branch, old, new_text, message.splitlines()[0], commit)


def uncommit_manifest(reg: Registry, branch: str, commit: str, base: str) -> None:
    """Take back :func:`commit_manifest`'s ``commit`` (``branch`` goes back to ``base``)."""
    old = reg.git.read_file(commit, mf.MANIFEST_FILE) or b""
    new = reg.git.read_file(base, mf.MANIFEST_FILE) or b""

    def move_back() -> None:
        reg.git.move_branch(branch, base, commit)

    _move_manifest(reg, branch, old, new, f"undo {commit[:12]}", move_back)


def _without(m: mf.ManifestModel | None, model: str, stage: str) -> dict[str, Any]:
    data = m.model_dump() if m else {}
    entry = data.get("models", {}).get(model)
    if entry is not None:
        if stage == "canary":
            entry["canary"] = None
        else:
            entry["stages"].pop(stage, None)
    return data


# -- status and check ----------------------------------------------------------------------------
def status(reg: Registry, now: datetime | None = None) -> list[ModelStatus]:
    now = now or datetime.now(UTC)
    m = reg.manifest()
    versions = reg.versions()
    by_name = {v.version: v for v in versions}
    changes = history(reg) if reg.git.has_commits() else []
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


def check(reg: Registry, base: str | None = None, *, require_signed: bool = False) -> CheckReport:
    """Everything a pull request touching models.yaml must satisfy (``require_signed``: as if
    the policy said so, every production/canary tag's signature must verify)."""
    try:
        m = mf.load(reg.manifest_path)
    except ManifestError as e:
        return CheckReport(ok=False, base=base, problems=[Problem(message=e.problem, line=e.line)])
    problems: list[Problem] = []
    versions = {v.version: v for v in reg.versions()}

    def add(model: str | None, ln: int | None, message: str) -> None:
        problems.append(Problem(model=model, line=ln, message=message))

    def line(*keys: Any) -> int | None:
        return m.line_of("models", *keys)

    def check_ref(model: str, where: str, version: str, ln: int | None, need_validated: bool) -> None:
        info = versions.get(version)
        if info is None:
            add(
                model,
                ln,
                f"{model} {where}: {version} is not a version tag in this repository "
                "(push the tag, or fetch tags: git fetch --tags)",
            )
        elif info.model != model:
            add(model, ln, f"{model} {where}: {version} is a version of {info.model}, not {model}")
        elif need_validated and info.status != "validated":
            add(
                model,
                ln,
                f"{model} {where}: {version} has no passing validation record "
                f"({info.status}); run gitreg validate {version} --record",
            )

    for name, entry in m.model.models.items():
        for stage, v in entry.stages.items():
            check_ref(name, stage, v, line(name, "stages", stage), stage == "production")
            if v in entry.archived:
                add(
                    name,
                    line(name, "stages", stage),
                    f"{name} {stage}: {v} is archived; archived versions hold no stage",
                )
        if entry.canary:
            check_ref(name, "canary", entry.canary.version, line(name, "canary", "version"), True)
            if entry.canary.version in entry.archived:
                add(name, line(name, "canary"), f"{name} canary: {entry.canary.version} is archived")
        for i, v in enumerate(entry.archived):
            check_ref(name, "archived", v, line(name, "archived", i), False)

    # What the policy allows to be loaded and served (unknown policy keys fail the schema above).
    for name, entry in m.model.models.items():
        held = [("production", entry.stages.get("production"), line(name, "stages", "production"))]
        if entry.canary:
            held.append(("canary", entry.canary.version, line(name, "canary", "version")))
        for where, v, ln in held:
            info = versions.get(v) if v else None
            if info is not None and info.model == name:  # a bad reference is reported above
                policy = m.model.policy
                if require_signed and not policy.require_signed:
                    policy = policy.model_copy(update={"require_signed": True})
                for problem in policy_problems(reg, policy, info):
                    add(name, ln, f"{name} {where}: {v} {problem}")

    base_m: mf.ManifestModel | None = None
    if base is not None:
        if reg.git.rev_parse(base) is None:
            raise GitregError(f"--base {base}: no such revision", "fetch it first: git fetch origin")
        base_m = _parse_manifest(reg.git.read_file(base, mf.MANIFEST_FILE))
        for name in m.model.models:
            changed = sorted(
                s
                for s in _stages_of(base_m, name) | _stages_of(m.model, name)
                if stage_value(base_m, name, s) != stage_value(m.model, name, s)
            )
            if _canary_graduation(base_m, m.model, name, changed):
                changed = ["production"]
            if len(changed) > 1:
                add(
                    name,
                    line(name),
                    f"{name}: {len(changed)} stages change in one pull request "
                    f"({', '.join(changed)}); change one stage per pull request",
                )

    if m.model.policy.require_staging_before_production:
        staged = _ever_staged(reg, base_m, m.model)
        for name, entry in m.model.models.items():
            prod = entry.stages.get("production")
            old = stage_value(base_m, name, "production") if base_m else None
            if prod and (old is None or old[0] != prod) and prod not in staged.get(name, set()):
                add(
                    name,
                    line(name, "stages", "production"),
                    f"{name} production: {prod} was never in staging"
                    " (policy require_staging_before_production)",
                )
    return CheckReport(ok=not problems, base=base, models=len(m.model.models), problems=problems)


POLICY_KEYS = tuple(mf.LoadPolicy.model_fields)


def bundle_format(info: VersionInfo) -> str:
    """What a version's policy file is, as far as its tag and validation record tell (nothing is
    downloaded): ``safetensors`` (a policy.safetensors file), ``torchscript`` (framework
    'torchscript', or the validation loaded it as TorchScript), ``state_dict`` (the validation
    read it as a weights-only state dict) or ``unknown``."""
    names = {f.path for f in info.files}
    if "policy.safetensors" in names:
        return "safetensors"
    recorded = info.validation.policy_format if info.validation else None
    if info.framework.strip().lower() == "torchscript" or recorded == "torchscript":
        return "torchscript"
    return "state_dict" if recorded == "state_dict" else "unknown"


def policy_problems(reg: Registry, policy: mf.LoadPolicy, info: VersionInfo) -> list[str]:
    """Why ``policy`` forbids loading this version (empty: it does not), from the tag alone."""
    problems = []
    fmt = bundle_format(info)
    if not policy.allow_torchscript and fmt == "torchscript":
        problems.append("is TorchScript, which the policy does not allow (allow_torchscript: false)")
    elif not policy.allow_torchscript and fmt == "unknown":
        problems.append(
            "has a policy.pt that may be TorchScript (framework "
            f"{info.framework!r}, no validation record says otherwise), which the policy does not "
            "allow (allow_torchscript: false); validate it, or export policy.safetensors"
        )
    if fmt in ("safetensors", "state_dict"):
        if not info.architecture:
            problems.append("is a state dict with no architecture in its metadata: it cannot be served")
        elif info.architecture not in policy.architectures:
            problems.append(
                f"names architecture {info.architecture!r}, which is not in the policy's architectures"
            )
    total = sum(f.size for f in info.files)
    if policy.max_bundle_bytes is not None and total > policy.max_bundle_bytes:
        problems.append(f"is {total} bytes, over the policy's max_bundle_bytes {policy.max_bundle_bytes}")
    if policy.require_signed:
        signed, why = reg.git.verify_tag(info.version)
        if not signed:
            problems.append(f"has a tag whose signature does not verify ({why}; policy require_signed)")
    return problems


def _canary_graduation(
    base: mf.ManifestModel | None, head: mf.ManifestModel, name: str, changed: list[str]
) -> bool:
    """production := the canary, canary cleared: one promotion, not two changes."""
    if sorted(changed) != ["canary", "production"]:
        return False
    old_canary = stage_value(base, name, "canary")
    new_prod = stage_value(head, name, "production")
    return old_canary is not None and new_prod is not None and old_canary[0] == new_prod[0]


def _ever_staged(reg: Registry, base: mf.ManifestModel | None, head: mf.ManifestModel) -> dict[str, set[str]]:
    staged: dict[str, set[str]] = {}
    for m in (base, head):
        for name, entry in m.models.items() if m else []:
            if entry.stages.get("staging"):
                staged.setdefault(name, set()).add(entry.stages["staging"])
    if reg.git.has_commits():
        for change in history(reg):
            if change.stage == "staging" and change.version:
                staged.setdefault(change.model, set()).add(change.version)
    return staged
