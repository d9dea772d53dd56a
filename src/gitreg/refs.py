"""References: what people ask for — ``policy@production`` — resolved to a version.

One operation for every front end: the CLI's commands that take a version, the Python API and
``gitreg resolve`` all call :func:`version_of` (or :func:`resolve`, which says more). A plain
version name costs nothing here; ``MODEL@STAGE`` is looked up in models.yaml — the checked-out
one (in a bare repository, the branch's), or the one at ``at`` (a commit, branch or tag).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from gitreg import catalog
from gitreg import manifest as mf
from gitreg.context import Context
from gitreg.errors import EmptyStage, InvalidReference, ManifestError, ModelNotFound, UnknownRevision
from gitreg.metadata import FileDigest
from gitreg.versions import CANARY, LATEST, Reference, parse_reference


class Resolution(BaseModel):
    """What a reference names: the version, where it came from, and what it pins."""

    reference: str
    model: str
    stage: str | None = None  # production, staging, canary … (None: a version was named)
    version: str
    traffic: float | None = None  # the canary's share
    commit: str  # the commit the tag pins (the bundle's pointers)
    tag_object: str
    files: list[FileDigest] = Field(default_factory=list)
    status: str  # registered | validated | failed
    manifest_ref: str | None = None  # the --ref it was resolved at (None: the checked-out models.yaml)
    set_by: str | None = None  # the commit of models.yaml that gave the stage this version


def version_of(ctx: Context, text: str, at: str | None = None) -> str:
    """The version ``text`` names (a version name is returned as it is, without a git call)."""
    ref = parse_reference(text)
    if ref.model is None:
        return ref.selector
    version = _lookup(ctx, ref, at)[0]
    if ref.is_version:  # MODEL@VERSION: that version must be MODEL's
        _same_model(text, ref.model, catalog.get(ctx, version).model, version)
    return version


def resolve(ctx: Context, text: str, at: str | None = None) -> Resolution:
    """``text`` resolved, with the tag's commit and files, its validation status and the
    models.yaml commit that set the stage."""
    ref = parse_reference(text)
    version, traffic = (ref.selector, None) if ref.model is None else _lookup(ctx, ref, at)
    info = catalog.get(ctx, version)
    stage = None if ref.model is None or ref.is_version else ref.selector
    if ref.model is not None:
        _same_model(text, ref.model, info.model, version)
    return Resolution(
        reference=text,
        model=info.model,
        stage=stage,
        version=version,
        traffic=traffic,
        commit=info.commit,
        tag_object=info.tag_object,
        files=info.files,
        status=info.status,
        manifest_ref=at,
        set_by=_set_by(ctx, info.model, stage, version, at) if stage not in (None, LATEST) else None,
    )


def _same_model(text: str, asked: str, actual: str, version: str) -> None:
    if actual != asked:
        raise InvalidReference(text, f"{version} is a version of {actual}, not {asked}")


def _lookup(ctx: Context, ref: Reference, at: str | None) -> tuple[str, float | None]:
    """(version, canary traffic) that ``MODEL@SELECTOR`` names."""
    assert ref.model is not None
    if ref.is_version:
        return ref.selector, None
    if ref.selector == LATEST:
        newest = catalog.versions(ctx, model=ref.model, limit=1)
        if not newest:
            raise ModelNotFound(ref.model)
        return newest[0].version, None
    manifest, where = _manifest(ctx, at)
    entry = manifest.model.models.get(ref.model)
    if entry is None:
        raise ModelNotFound(ref.model)
    if ref.selector == CANARY:
        if entry.canary is None:
            raise EmptyStage(ref.model, CANARY, where)
        return entry.canary.version, entry.canary.traffic
    version = entry.stages.get(ref.selector)
    if version is None:
        raise EmptyStage(ref.model, ref.selector, where)
    return version, None


def _manifest(ctx: Context, at: str | None) -> tuple[mf.Manifest, str]:
    if at is None:
        return ctx.manifest(), "checked out" if not ctx.bare else f"on {ctx.branch or 'HEAD'}"
    commit = ctx.git.rev_parse(at)
    if commit is None:
        raise UnknownRevision(at, "--ref")
    raw = ctx.git.read_file(commit, mf.MANIFEST_FILE)
    if raw is None:
        raise ManifestError(
            mf.MANIFEST_FILE, f"does not exist at {at}", "name a ref where the registry exists"
        )
    return mf.loads_bytes(raw), f"at {at}"


def _set_by(ctx: Context, model: str, stage: str | None, version: str, at: str | None) -> str | None:
    """The newest commit of models.yaml that made ``stage`` hold ``version`` (None: not
    committed yet, or the history is not here)."""
    from gitreg.lifecycle import history

    for change in history(ctx, model, at):
        if change.stage == stage and change.version == version:
            return change.commit
    return None
