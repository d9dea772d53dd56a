"""The doctor's checks of what was published: tags, their pointers and bytes, notes, the remote."""

from __future__ import annotations

from gitreg.context import Context
from gitreg.doctor.findings import Finding
from gitreg.errors import GitregError
from gitreg.metadata import parse_tag_message, parse_validation_note
from gitreg.versions import is_version


def check_tags(ctx: Context, remote_check: bool) -> tuple[list[Finding], int]:
    from gitreg.store import METADATA_FILE, POINTER_SUFFIX, DvcStore, parse_pointer

    out: list[Finding] = []
    try:
        manifest = ctx.manifest()
    except GitregError:
        manifest = None
    wanted: dict[str, tuple[str, str, str | None]] = {}  # object spec -> (version, file, md5)
    summaries = []
    for tag in ctx.git.version_tags():
        if not is_version(tag.name):
            continue
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
        summary, _ = parse_tag_message(tag.message)
        if summary is None or summary.version != tag.name:
            out.append(
                Finding(
                    check="tag",
                    severity="warning",
                    message=f"{tag.name}: the tag message has no valid gitreg block: gitreg ignores it",
                    subject=tag.name,
                )
            )
            continue
        summaries.append((tag, summary))
        entry = manifest.model.models.get(summary.model) if manifest else None
        model_path = entry.path if entry else f"models/{summary.model}"
        for f in summary.files:
            suffix = "" if f.path == METADATA_FILE else POINTER_SUFFIX
            spec = f"{tag.commit}:{model_path}/{f.path}{suffix}"
            wanted[spec] = (tag.name, f.path, None if f.path == METADATA_FILE else f.md5)
    raw = ctx.git.read_objects(wanted)
    md5s: dict[str, list[tuple[str, str]]] = {}
    for spec, (version, path, md5) in wanted.items():
        data = raw.get(spec)
        if data is None:
            out.append(
                Finding(
                    check="pointer",
                    severity="error",
                    message=f"{version}: its commit lacks {spec.split(':', 1)[1]}",
                    subject=version,
                    hint="the tag points at the wrong commit; do not use this version",
                )
            )
            continue
        if md5 is None:
            continue
        try:
            ptr = parse_pointer(data, spec)
        except GitregError as e:
            out.append(Finding(check="pointer", severity="error", message=e.message, subject=version))
            continue
        if ptr.md5 != md5:
            out.append(
                Finding(
                    check="pointer",
                    severity="error",
                    message=f"{version}: {path} pointer md5 {ptr.md5} differs from the tag's {md5}",
                    subject=version,
                )
            )
            continue
        md5s.setdefault(md5, []).append((version, path))
    if remote_check and md5s:
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
                        hint=None if gone_by_cleanup else "push it from a clone that has it: dvc push",
                    )
                )
    return out, len(summaries)


def check_notes(ctx: Context) -> list[Finding]:
    out = []
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


def check_remote_tags(ctx: Context) -> list[Finding]:
    """Version tags not on the Git remote (fixable: push them), and version tags whose name
    the remote holds for another tag object: two machines registered under one name, and this
    one's never reached the remote (one ``git ls-remote``)."""
    remote = ctx.git.remote_name()
    if remote is None:
        return []
    local = sorted((t for t in ctx.git.version_tags() if is_version(t.name)), key=lambda t: t.name)
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
