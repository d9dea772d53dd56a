"""The history of every stage, read back from ``git log -- models.yaml`` in two git calls."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel

from gitreg import manifest as mf
from gitreg.context import Context
from gitreg.errors import ManifestError
from gitreg.gitrepo import CommitRecord

_PR_PATTERNS = (
    re.compile(r"Merge pull request #(\d+)"),
    re.compile(r"\(#(\d+)\)\s*$"),
    re.compile(r"See merge request \S*!(\d+)"),
)


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
        return mf.loads_bytes(raw).model
    except ManifestError:
        return None


def manifest_history(
    ctx: Context, rev: str
) -> list[tuple[CommitRecord, mf.ManifestModel | None, mf.ManifestModel | None]]:
    """(commit, manifest before it, manifest after it) for each commit that touched
    models.yaml, newest first: two git calls whatever the history's length."""
    log = ctx.git.log_file(rev, mf.MANIFEST_FILE)
    keys = []
    for c in log:
        keys.append(f"{c.sha}:{mf.MANIFEST_FILE}")
        if c.parents:
            keys.append(f"{c.parents[0]}:{mf.MANIFEST_FILE}")
    blobs = ctx.git.read_objects(keys)
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


def history(ctx: Context, model: str | None = None, rev: str | None = None) -> list[StageChange]:
    """Every stage change (of one model or all), newest first, with the PR merge when visible;
    ``rev``: where to read it from (default HEAD; a bare repository's branch)."""
    if rev is None:
        rev = (ctx.branch or "HEAD") if ctx.bare else "HEAD"
    if ctx.git.rev_parse(rev) is None:
        return []
    changes: list[StageChange] = []
    for c, before, after in manifest_history(ctx, rev):
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
        line = ctx.git.first_parent_line(rev)
        merges: dict[str, CommitRecord | None] = {}
        for ch in changes:
            if ch.commit not in line and ch.commit not in merges:
                merges[ch.commit] = ctx.git.merge_that_brought(ch.commit, rev)
            merge = merges.get(ch.commit)
            ch.merge = merge.sha if merge else None
            # GitLab writes "See merge request group/repo!12" in the merge's body, not its subject
            ch.pull_request = _pr_number(
                merge.subject if merge else "", ch.subject, merge.body if merge else ""
            )
    return changes
