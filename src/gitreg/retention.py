"""Retention: which versions each model keeps, and `gitreg cleanup`, which retires the rest.

A model's ``retention`` in models.yaml (``keep_last``, ``max_age_days``) decides. A version is
KEPT when any of these holds:

- it holds a stage (production, staging, any other stage, or the canary): production is never
  touched, whatever its age;
- it is among the newest ``keep_last`` versions of its model (archived versions count too: the
  rule is about the model's history, not about what is live);
- it is younger than ``max_age_days`` (its ``registered_at`` against the registry's clock).

When both limits are set, a version is kept if EITHER keeps it: ``{keep_last: 20,
max_age_days: 90}`` keeps the last 20 and everything from the last 90 days. A model without
``retention``, or with neither limit set, is not cleaned at all.

Every other version is cleaned: archived in models.yaml (one commit), then its bytes are
removed from the DVC remote and the local cache -- except the bytes (by md5) that anything
still kept refers to: a kept version of ANY model, or a pointer in the checked-out commit.
``metadata.json`` lives in Git and is never removed. Tags stay (the history is immutable)
unless ``delete_tags``. An archived version whose bytes are already gone is not processed again.

The order makes a crash safe: commit (and push) the manifest, then remove bytes, then tags. A
failure part-way leaves versions archived with some bytes still present; running cleanup again
removes what is left. :func:`build_plan` is pure; :func:`plan_cleanup` gathers its inputs.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from gitreg import catalog
from gitreg import manifest as mf
from gitreg.context import Context
from gitreg.errors import GitError, GitregError, PartialPush, RemoteTagsNotDeleted
from gitreg.store import METADATA_FILE
from gitreg.versions import parse_version

if TYPE_CHECKING:
    from gitreg.catalog import VersionInfo

Action = Literal["keep", "archive", "purge", "delete"]


# -- plan and result ---------------------------------------------------------------------------
class Policy(BaseModel):
    model: str
    keep_last: int | None = None
    max_age_days: int | None = None


class ObjectRef(BaseModel):
    """One bundle file's bytes in the DVC remote."""

    path: str
    md5: str
    size: int


class PlanRow(BaseModel):
    """One version of a model under retention, and what cleanup does to it.

    action: ``keep``; ``archive`` (add to ``archived``, remove its bytes); ``purge`` (archived
    already: remove the bytes left); ``delete`` (``--delete-tags``: remove its bytes, delete the
    tag and take it out of models.yaml)."""

    model: str
    version: str
    registered_at: datetime
    age_days: float
    action: Action
    reason: str
    archived_before: bool = False
    tag_object: str = ""  # the annotated tag: `git update-ref refs/tags/V OBJECT` restores it
    remove: list[ObjectRef] = Field(default_factory=list)  # bytes this row frees (each md5 once)
    shared: list[ObjectRef] = Field(default_factory=list)  # bytes kept: something kept uses them
    bytes_freed: int = 0


class CleanupPlan(BaseModel):
    now: datetime
    delete_tags: bool = False
    policies: list[Policy] = Field(default_factory=list)
    unmanaged: list[str] = Field(default_factory=list)  # models without retention: not cleaned
    rows: list[PlanRow] = Field(default_factory=list)
    already_clean: int = 0  # archived, outside retention, bytes gone: nothing left to do
    versions_kept: int = 0
    versions_cleaned: int = 0
    objects: list[ObjectRef] = Field(default_factory=list)  # every object to remove, once
    bytes_freed: int = 0

    def cleaned(self) -> list[PlanRow]:
        return [r for r in self.rows if r.action != "keep"]


class CleanupResult(BaseModel):
    plan: CleanupPlan
    dry_run: bool
    branch: str | None = None
    commit: str | None = None
    archived: list[str] = Field(default_factory=list)  # versions added to `archived`
    unlisted: list[str] = Field(default_factory=list)  # versions taken out of `archived`
    objects_removed: int = 0  # from the DVC remote
    cache_objects_removed: int = 0
    bytes_freed: int = 0  # from the DVC remote
    tags_deleted: list[str] = Field(default_factory=list)
    remote_tags_deleted: list[str] = Field(default_factory=list)
    pushed: bool = False
    remote: str | None = None


# -- planning (pure) ---------------------------------------------------------------------------
def _age_days(now: datetime, then: datetime) -> float:
    return round((now - then).total_seconds() / 86400, 2)


def _held(entry: mf.ModelEntry, version: str) -> list[str]:
    held = [stage for stage, v in entry.stages.items() if v == version]
    if entry.canary and entry.canary.version == version:
        held.append("canary")
    return held


def _data_files(info: VersionInfo) -> list[ObjectRef]:
    return [ObjectRef(path=f.path, md5=f.md5, size=f.size) for f in info.files if f.path != METADATA_FILE]


def _decide(entry: mf.ModelEntry, rank: int, info: VersionInfo, now: datetime) -> tuple[bool, str]:
    """(kept?, why) for the version of rank ``rank`` (0 = newest) under ``entry.retention``."""
    ret = entry.retention
    assert ret is not None
    held = _held(entry, info.version)
    kept: list[str] = []
    if held:
        kept.append("holds " + ", ".join(held))
    if ret.keep_last is not None and rank < ret.keep_last:
        kept.append(f"among the newest {ret.keep_last}")
    young = ret.max_age_days is not None and now - info.registered_at < timedelta(days=ret.max_age_days)
    if young:
        kept.append(f"younger than {ret.max_age_days} days")
    if kept:
        return True, "; ".join(kept)
    out: list[str] = []
    if ret.keep_last is not None:
        out.append(f"not among the newest {ret.keep_last}")
    if ret.max_age_days is not None:
        out.append(f"older than {ret.max_age_days} days")
    return False, " and ".join(out)


def build_plan(
    versions: Iterable[VersionInfo],
    manifest: mf.ManifestModel,
    now: datetime,
    *,
    pinned: Collection[str] = (),
    present: Collection[str] | None = None,
    delete_tags: bool = False,
) -> CleanupPlan:
    """What cleanup would do, from the versions (tags), the manifest and the clock.

    ``pinned``: md5s that must stay whatever the versions say (the checked-out pointers).
    ``present``: md5s whose bytes still exist (remote or cache); None assumes all of them."""
    by_model: dict[str, list[VersionInfo]] = {}
    for info in versions:
        by_model.setdefault(info.model, []).append(info)
    plan = CleanupPlan(now=now, delete_tags=delete_tags)
    decided: list[tuple[VersionInfo, bool, str, bool]] = []  # info, kept, reason, archived before
    protected: set[str] = set(pinned)
    for model in sorted(by_model):
        infos = sorted(by_model[model], key=lambda i: parse_version(i.version), reverse=True)
        entry = manifest.models.get(model)
        ret = entry.retention if entry else None
        if entry is None or ret is None or (ret.keep_last is None and ret.max_age_days is None):
            plan.unmanaged.append(model)
            for info in infos:
                protected.update(f.md5 for f in _data_files(info))
            continue
        plan.policies.append(Policy(model=model, keep_last=ret.keep_last, max_age_days=ret.max_age_days))
        for rank, info in enumerate(infos):
            kept, reason = _decide(entry, rank, info, now)
            decided.append((info, kept, reason, info.version in entry.archived))
            if kept:
                protected.update(f.md5 for f in _data_files(info))

    assigned: set[str] = set()
    for info, kept, reason, archived_before in decided:
        row = PlanRow(
            model=info.model,
            version=info.version,
            registered_at=info.registered_at,
            age_days=_age_days(now, info.registered_at),
            action="keep",
            reason=reason,
            archived_before=archived_before,
            tag_object=info.tag_object,
        )
        if kept:
            plan.rows.append(row)
            plan.versions_kept += 1
            continue
        files = _data_files(info)
        row.shared = [f for f in files if f.md5 in protected]
        for f in files:
            if f.md5 in protected or f.md5 in assigned:
                continue
            if present is not None and f.md5 not in present:
                continue
            assigned.add(f.md5)
            row.remove.append(f)
        row.bytes_freed = sum(f.size for f in row.remove)
        if delete_tags:
            row.action = "delete"
        elif not archived_before:
            row.action = "archive"
        elif row.remove:
            row.action = "purge"
        else:
            plan.already_clean += 1
            continue
        if row.shared:
            row.reason += "; bytes shared with a kept version stay"
        plan.rows.append(row)
        plan.versions_cleaned += 1
        plan.objects.extend(row.remove)
    plan.bytes_freed = sum(f.size for f in plan.objects)
    return plan


# -- gathering the inputs ------------------------------------------------------------------------
def checked_out_md5s(ctx: Context, manifest: mf.Manifest) -> set[str]:
    """The md5s the checked-out commit's pointers name, under every model's folder: a fresh
    clone's `dvc pull` needs them whatever the retention says."""
    from gitreg.store import POINTER_SUFFIX, parse_pointer

    if ctx.git.rev_parse("HEAD") is None:
        return set()
    entries = [
        e
        for entry in manifest.model.models.values()
        for e in ctx.git.list_tree("HEAD", entry.path)
        if e.type == "blob" and e.path.endswith(POINTER_SUFFIX)
    ]
    blobs = ctx.git.read_objects(e.sha for e in entries)
    md5s: set[str] = set()
    for e in entries:
        try:
            md5s.add(parse_pointer(blobs[e.sha], e.path).md5)
        except (GitregError, KeyError):
            continue  # not a pointer gitreg can read: it pins nothing
    return md5s


def plan_cleanup(ctx: Context, now: datetime | None = None, *, delete_tags: bool = False) -> CleanupPlan:
    """The cleanup plan for the registry as it is: tags, models.yaml, the checked-out pointers
    and which objects are still stored (one batched existence check on the DVC remote)."""
    from gitreg.store import DvcStore

    now = now or ctx.clock()
    manifest = mf.load(ctx.manifest_path)
    if not any(e.retention for e in manifest.model.models.values()):
        return build_plan(catalog.versions(ctx), manifest.model, now, delete_tags=delete_tags)
    versions = catalog.versions(ctx)
    pinned = checked_out_md5s(ctx, manifest)
    draft = build_plan(versions, manifest.model, now, pinned=pinned, delete_tags=delete_tags)
    candidates = [f.md5 for f in draft.objects]
    present = DvcStore(ctx.root).existing_objects(candidates) if candidates else set()
    return build_plan(versions, manifest.model, now, pinned=pinned, present=present, delete_tags=delete_tags)


# -- running it ----------------------------------------------------------------------------------
def _message(plan: CleanupPlan, rows: list[PlanRow]) -> str:
    models = sorted({r.model for r in rows})
    verb = "delete" if plan.delete_tags else "archive"
    n = len(rows)
    subject = f"cleanup: {verb} {n} version{'s' if n != 1 else ''} of {', '.join(models)}"
    policies = ", ".join(
        f"{p.model} "
        + " ".join(
            f"{k}={v}"
            for k, v in (("keep_last", p.keep_last), ("max_age_days", p.max_age_days))
            if v is not None
        )
        for p in plan.policies
        if p.model in models
    )
    if plan.delete_tags:
        what = (
            "Outside the retention policy and holding no stage: taken out of models.yaml, their bytes\n"
            "removed from the DVC remote (unless a kept version shares them) and their tags deleted.\n"
            "While the tag objects below are in a repository (this one until `git gc`, or a clone),\n"
            "`git update-ref refs/tags/VERSION TAG_OBJECT` restores a tag."
        )
    else:
        what = (
            "Outside the retention policy and holding no stage: archived, their bytes removed from the\n"
            "DVC remote (unless a kept version shares them). Their tags stay."
        )
    lines = [
        f"  {r.model} {r.version}" + (f"  tag {r.tag_object}" if plan.delete_tags else "") + f"  ({r.reason})"
        for r in rows
    ]
    trailers = [f"Gitreg-Model: {m}" for m in models]
    trailers.append(f"Gitreg-Stage: {'deleted' if plan.delete_tags else 'archived'}")
    trailers += [f"Gitreg-Version: {r.version}" for r in rows]
    return (
        f"{subject}\n\nRetention: {policies}.\n{what}\n\n"
        + "\n".join(lines)
        + "\n\n"
        + "\n".join(trailers)
        + "\n"
    )


def _push(ctx: Context, remote: str, refspecs: list[str], done: str, then: str) -> None:
    try:
        ctx.git.push(remote, refspecs)
    except GitError as e:
        raise PartialPush(done, remote, e.message, then) from None


def run_cleanup(ctx: Context, plan: CleanupPlan, *, push: bool = False) -> CleanupResult:
    """Carry out ``plan`` (its ``delete_tags`` included): commit models.yaml on the current
    branch (and push it with ``push``), then remove the bytes, then delete the tags."""
    from gitreg.lifecycle import branch_base, commit_manifest
    from gitreg.store import DvcStore

    branch, head = branch_base(ctx)
    remote = ctx.remote() if push else None
    result = CleanupResult(plan=plan, dry_run=False, branch=branch, remote=remote)
    rows = plan.cleaned()
    if not rows:
        return result

    # 1. models.yaml, in one commit: archived versions with bytes present is a safe state.
    m = mf.load(ctx.manifest_path)
    for r in sorted(rows, key=lambda r: parse_version(r.version)):  # archived: oldest first
        if plan.delete_tags:
            if m.unarchive(r.model, r.version):
                result.unlisted.append(r.version)
        elif r.action == "archive":
            m.archive(r.model, r.version)
            result.archived.append(r.version)
    if result.archived or plan.delete_tags:
        # Commit first, then the working tree (crash-safe: see commit_manifest). With
        # --delete-tags the file may not change (nothing was archived): the commit is then
        # empty but still the record of which versions were deleted.
        result.commit = commit_manifest(ctx, branch, head, m.dumps().encode(), _message(plan, rows))
    if remote is not None:
        done = f"committed {result.commit[:10]}" if result.commit else "nothing to commit"
        _push(
            ctx,
            remote,
            [f"HEAD:refs/heads/{branch}"],
            done,
            f"no bytes were removed; bring {branch} in step with {remote} (git pull --rebase), "
            "then run gitreg cleanup --push again",
        )
        result.pushed = True

    # 2. bytes, never those a kept version refers to (the plan left them out).
    if plan.objects:
        removed = DvcStore(ctx.root).remove_objects(f.md5 for f in plan.objects)
        sizes = {f.md5: f.size for f in plan.objects}
        result.objects_removed = len(removed.remote)
        result.cache_objects_removed = len(removed.cache)
        result.bytes_freed = sum(sizes[md5] for md5 in removed.remote)

    # 3. tags, last: until here every cleaned version can still be recreated from its tag.
    if plan.delete_tags:
        names = [r.version for r in rows]
        result.tags_deleted = ctx.git.delete_tags(names)
        if remote is not None:
            try:
                result.remote_tags_deleted = ctx.git.delete_remote_tags(remote, names)
            except GitError as e:
                raise RemoteTagsNotDeleted(len(result.tags_deleted), remote, e.message) from None
    return result


def cleanup(
    ctx: Context, *, dry_run: bool = False, delete_tags: bool = False, push: bool = False
) -> CleanupResult:
    """Plan under the registry lock and, unless ``dry_run``, carry the plan out."""
    if dry_run:
        return CleanupResult(plan=plan_cleanup(ctx, delete_tags=delete_tags), dry_run=True)
    from gitreg.lifecycle import branch_base

    branch_base(ctx)  # refuse before planning: a detached HEAD or an edited models.yaml
    with ctx.lock():
        plan = plan_cleanup(ctx, delete_tags=delete_tags)
        return run_cleanup(ctx, plan, push=push)
