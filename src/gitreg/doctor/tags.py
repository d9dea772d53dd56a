"""The doctor's checks of what was published: tags, their pointers and bytes, notes, the remote."""

from __future__ import annotations

from gitreg.catalog import Candidate, whole_problems
from gitreg.context import Context
from gitreg.doctor.findings import Finding
from gitreg.errors import GitregError
from gitreg.manifest import Manifest
from gitreg.metadata import TagSummary, parse_tag_block, parse_validation_note
from gitreg.store import METADATA_FILE
from gitreg.versions import is_version


def check_tags(ctx: Context, remote_check: bool, offline: bool = False) -> tuple[list[Finding], int, int]:
    """One finding per version-named tag that is not a whole version (foreign: lightweight or
    without a gitreg block; broken: a block out of bounds, on no commit, or on a commit without
    the model's files), then the whole versions' bytes on the DVC remote: by default those of
    every version holding a stage (production, staging, a canary: what a replica would pull;
    one existence query, no bytes read), with ``remote_check`` those of every version, with
    ``offline`` none. Returns the findings, the whole versions and the versions whose bytes
    were looked for."""
    from gitreg.store import DvcStore

    out: list[Finding] = []
    try:
        manifest = ctx.manifest()
    except GitregError:
        manifest = None
    every = ctx.git.version_tags()  # the names that start like a version
    tags = [t for t in every if is_version(t.name)]
    out += [
        Finding(
            check="tag",
            severity="warning",
            message=f"{t.name[:80]} looks like a version but is no version name: gitreg ignores it",
            subject=t.name,
            hint="versions look like v2025-07-06--18h51, optionally with -2 … -999999",
        )
        for t in every
        if not is_version(t.name)
    ]
    candidates: list[Candidate] = []
    summaries: dict[str, TagSummary] = {}
    for tag in tags:
        if not tag.annotated:
            out.append(
                Finding(
                    check="tag",
                    severity="warning",
                    message=f"{tag.name} is a lightweight tag: gitreg ignores it",
                    subject=tag.name,
                    hint=f"delete it (git tag -d {tag.name}) or re-register the bundle",
                )
            )
            continue
        summary, _, problem = parse_tag_block(tag.message)
        if summary is None:
            out.append(
                Finding(
                    check="tag",
                    severity="warning",
                    message=f"{tag.name} is a foreign or broken tag ({problem}): gitreg ignores it",
                    subject=tag.name,
                    hint=f"delete it (git tag -d {tag.name}) if it is not yours",
                )
            )
            continue
        summaries[tag.name] = summary
        candidates.append((tag.name, tag.target_type, tag.commit, tag.name, summary))
    with ctx.git.object_reader() as reader:
        problems = whole_problems(ctx, reader, candidates)
    md5s: dict[str, list[tuple[str, str]]] = {}
    for name, summary in summaries.items():
        problem = problems.get(name, "")
        if problem:
            out.append(
                Finding(
                    check="pointer",
                    severity="error",
                    message=f"{name} is a broken version tag ({problem}): gitreg ignores it",
                    subject=name,
                    hint="the tag points at the wrong commit or was forged; do not use this version",
                )
            )
            continue
        for f in summary.files:
            if f.path != METADATA_FILE:
                md5s.setdefault(f.md5, []).append((name, f.path))
    whole = len(summaries) - sum(1 for name in summaries if problems.get(name, ""))
    if not remote_check:
        staged = set() if offline or manifest is None else _staged(manifest, summaries)
        md5s = {m: [(v, p) for v, p in at if v in staged] for m, at in md5s.items()}
        md5s = {m: at for m, at in md5s.items() if at}
    looked = len({v for at in md5s.values() for v, _ in at})
    if md5s:
        try:
            present = DvcStore(ctx.root).remote_objects(md5s)
        except GitregError as e:
            out.append(Finding(check="remote-bytes", severity="error", message=e.message, hint=e.hint))
            present = set(md5s)
        archived = {v for m in (manifest.model.models.values() if manifest else []) for v in m.archived}
        for md5 in sorted(set(md5s) - present):
            for version, path in md5s[md5]:
                gone_by_cleanup = version in archived
                out.append(
                    Finding(
                        check="remote-bytes",
                        severity="info" if gone_by_cleanup else "error",
                        message=f"{version}: {path} ({md5}) is not on the DVC remote"
                        + (" (archived: cleanup may have removed it)" if gone_by_cleanup else ""),
                        subject=version,
                        hint=None if gone_by_cleanup else _MISSING_HINT,
                    )
                )
    return out, whole, looked


# `dvc gc -w -c` keeps only the checked-out commit's bytes: the usual way they go missing.
_MISSING_HINT = (
    "push it from a clone that has it (dvc push -r REMOTE --all-tags), or re-register the bundle; "
    "free space with `gitreg cleanup`, never `dvc gc -w -c` (`dvc gc --all-tags --all-branches -c` is safe)"
)


def _staged(manifest: Manifest, summaries: dict[str, TagSummary]) -> set[str]:
    """The versions that hold a stage or a canary in models.yaml (and are versions of that model)."""
    return {v for v, s in summaries.items() if set(manifest.stages_of(s.model, v)) - {"archived"}}


def check_notes(ctx: Context) -> list[Finding]:
    out = []
    ctx.sync_notes()
    for obj, text in ctx.git.notes().items():
        if parse_validation_note(text) is None:
            out.append(
                Finding(
                    check="note",
                    severity="warning",
                    message=f"the validation note on {obj[:12]} cannot be read",
                    subject=obj,
                    hint="re-run `gitreg validate VERSION --record`",
                )
            )
    return out


def check_remote_tags(ctx: Context, skip: set[str | None] | None = None) -> list[Finding]:
    """Version tags not on the Git remote (fixable: push them), and version tags whose name
    the remote holds for another tag object: two machines registered under one name, and this
    one's never reached the remote (one ``git ls-remote``). Tags in ``skip`` are no versions
    (reported so elsewhere)."""
    remote = ctx.git.remote_name()
    if remote is None:
        return []
    skip = skip or set()
    local = sorted(
        (t for t in ctx.git.version_tags() if is_version(t.name) and t.name not in skip), key=lambda t: t.name
    )
    if not local:
        return []
    have = ctx.git.remote_tag_ids(remote)
    if have is None:
        return [
            Finding(
                check="remote",
                severity="info",
                message=f"Git remote {remote!r} cannot be reached: unpushed tags not checked",
            )
        ]
    branch = ctx.git.current_branch() or "BRANCH"
    out = []
    for tag in local:
        theirs = have.get(tag.name)
        if theirs is None:
            out.append(
                Finding(
                    check="tag-not-pushed",
                    severity="warning",
                    message=f"{tag.name} is not on the Git remote {remote!r}",
                    subject=tag.name,
                    fixable=True,
                    hint=f"gitreg doctor --fix --push, or git push {remote} refs/tags/{tag.name}",
                )
            )
        elif theirs != tag.object:
            out.append(
                Finding(
                    check="tag-differs-on-remote",
                    severity="error",
                    message=(
                        f"{tag.name} here is tag {tag.object[:12]}, but the Git remote {remote!r} has "
                        f"{tag.name} as {theirs[:12]}: another machine registered that name first"
                    ),
                    subject=tag.name,
                    hint=(
                        f"take the remote's and register yours again under a new name: git tag -d "
                        f"{tag.name} && git fetch {remote} tag {tag.name} && git reset --keep "
                        f"{remote}/{branch} (drops your unpushed commits), then "
                        f"gitreg register BUNDLE_DIR --model MODEL --push"
                    ),
                )
            )
    return out
