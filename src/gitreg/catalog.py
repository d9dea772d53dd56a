"""The read model: :class:`VersionInfo` and its readers (one version, every version, models).

A version is an annotated tag whose message carries a gitreg summary block; its status comes
from the validation note on the tag object and its stages from models.yaml. Reading every
version is a constant number of git calls whatever their count.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from gitreg.context import Context
from gitreg.errors import GitregError, ModelNotFound, NotAVersion, UnknownStatus, VersionNotFound
from gitreg.gitrepo import ObjectReader, TagRecord
from gitreg.metadata import (
    FileDigest,
    TagSummary,
    ValidationRecord,
    parse_tag_block,
    parse_tag_message,
    parse_validation_note,
)
from gitreg.versions import is_version, parse_version

Status = Literal["registered", "validated", "failed"]
STATUSES: tuple[str, ...] = ("registered", "validated", "failed")


class Lineage(BaseModel):
    data_version: str | None = None
    code_commit: str | None = None
    parent: str | None = None


class SignatureInfo(BaseModel):
    signed: bool
    verified: bool
    signer: str | None = None
    format: str | None = None
    reason: str = ""


class VersionInfo(BaseModel):
    version: str
    model: str
    algorithm: str
    framework: str
    created_at: datetime
    registered_at: datetime
    registered_by: str
    status: Status
    stages: list[str] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    files: list[FileDigest] = Field(default_factory=list)
    message: str = ""
    commit: str = ""
    tag_object: str = ""
    lineage: Lineage = Field(default_factory=Lineage)
    description: str | None = None
    env_id: str | None = None
    input_shape: list[int] | None = None
    architecture: str | None = None
    validation: ValidationRecord | None = None
    signature: SignatureInfo | None = None  # filled by Registry.signature (gitreg show), not listing


#: (key, what the tag points at, that object's id, the tag's name, its parsed summary block)
Candidate = tuple[str, str, str, str, TagSummary]


def model_paths(ctx: Context) -> dict[str, str]:
    """model -> its folder as models.yaml says (others are ``models/<model>``); {} when
    models.yaml cannot be read."""
    try:
        return {name: entry.path for name, entry in ctx.manifest().model.models.items()}
    except GitregError:
        return {}


def whole_problems(ctx: Context, reader: ObjectReader, candidates: list[Candidate]) -> dict[str, str]:
    """key -> why a version-named annotated tag is not a whole version ("" when it is).

    Whole: its summary names the tag's own version, it points at a commit, and that commit
    holds the model's folder with every file the summary lists (a parseable ``.dvc`` pointer
    with the summary's md5 for each bundle file). All the candidates' files are read in one
    round through ``reader`` (one ``git cat-file --batch`` however many tags)."""
    from gitreg.store.bundle import METADATA_FILE, POINTER_SUFFIX, parse_pointer

    paths = model_paths(ctx) if candidates else {}
    out: dict[str, str] = {}
    wanted: dict[str, list[tuple[str, str]]] = {}  # key -> [(spec, md5 or "")]
    for key, kind, target, name, summary in candidates:
        if summary.version != name:
            out[key] = f"its gitreg block names version {summary.version!r}, not {name}"
            continue
        if kind != "commit":
            out[key] = f"it points at a {kind}, not a commit"
            continue
        folder = paths.get(summary.model, f"models/{summary.model}").rstrip("/")
        specs = [(f"{target}:{folder}", "")]  # the folder first: "has no models/x" says most
        specs += [
            (
                f"{target}:{folder}/{f.path}" + ("" if f.path == METADATA_FILE else POINTER_SUFFIX),
                "" if f.path == METADATA_FILE else f.md5,
            )
            for f in summary.files
        ]
        if any("\n" in spec for spec, _ in specs):
            out[key] = "a path it names holds a newline"
            continue
        wanted[key] = specs
    objects = reader.read([spec for specs in wanted.values() for spec, _ in specs]) if wanted else {}
    parsed: dict[bytes, str] = {}  # pointer bytes -> its md5, or "!" + why it does not parse
    for key, specs in wanted.items():
        out[key] = ""
        for spec, md5 in specs:
            found = objects.get(spec)
            where = spec.split(":", 1)[1]
            is_folder = spec == specs[0][0]
            if found is None or (is_folder and found[0] != "tree"):
                out[key] = f"its commit has no {where}/" if is_folder else f"its commit lacks {where}"
                break
            if not md5:
                continue
            data = found[1]
            said = parsed.get(data)
            if said is None:
                try:
                    said = parsed[data] = parse_pointer(data, where).md5
                except GitregError as e:
                    said = parsed[data] = "!" + e.message
            if said.startswith("!"):
                out[key] = said[1:]
                break
            if said != md5:
                out[key] = f"{where} records md5 {said}, its gitreg block {md5}"
                break
    return out


def check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise UnknownStatus(status, STATUSES)


def version_info(
    ctx: Context, tag: TagRecord, summary: TagSummary, human: str, note: str | None
) -> VersionInfo:
    """The row of one version tag (``note``: its validation note's text, if any)."""
    record = parse_validation_note(note) if note else None
    status: Status = "registered"
    if record is not None:
        status = "validated" if record.passed else "failed"
    # Every part was validated when the tag block and the note were parsed: construct
    # without validating again (it is the per-row cost of listing 10,000 versions).
    return VersionInfo.model_construct(
        version=tag.name,
        model=summary.model,
        algorithm=summary.algorithm,
        framework=summary.framework,
        created_at=summary.created_at,
        registered_at=summary.registered_at,
        registered_by=summary.registered_by,
        status=status,
        stages=ctx.manifest().stages_of(summary.model, tag.name),
        metrics=summary.metrics,
        parameters=summary.parameters,
        files=summary.files,
        message=human,
        commit=tag.commit,
        tag_object=tag.object,
        lineage=Lineage.model_construct(
            data_version=summary.data_version,
            code_commit=summary.code_commit,
            parent=summary.parent,
        ),
        description=summary.description,
        env_id=summary.env_id,
        input_shape=summary.input_shape,
        architecture=summary.architecture,
        validation=record,
    )


def versions(
    ctx: Context,
    model: str | None = None,
    status: str | None = None,
    stage: str | None = None,
    limit: int | None = None,
) -> list[VersionInfo]:
    """Every version, newest first; a constant number of git calls whatever the count."""
    check_status(status)
    ctx.require_readable()
    tags = [t for t in ctx.git.version_tags() if t.annotated and is_version(t.name)]
    tags.sort(key=lambda t: parse_version(t.name), reverse=True)
    if tags:
        ctx.sync_notes()
    notes = ctx.git.notes() if tags else {}
    parsed = {t.name: parse_tag_message(t.message) for t in tags}
    candidates = [
        (t.name, t.target_type, t.commit, t.name, summary)
        for t in tags
        if (summary := parsed[t.name][0]) is not None
    ]
    with ctx.git.object_reader() as reader:
        problems = whole_problems(ctx, reader, candidates)
    result: list[VersionInfo] = []
    for tag in tags:
        summary, human = parsed[tag.name]
        if summary is None or problems.get(tag.name) != "":
            continue  # a tag that only looks like a version: ignored, never an error
        if model is not None and summary.model != model:
            continue
        info = version_info(ctx, tag, summary, human, notes.get(tag.object))
        if status is not None and info.status != status:
            continue
        if stage is not None and stage not in info.stages:
            continue
        result.append(info)
        if limit and len(result) >= limit:
            break
    return result


def tag_problem(ctx: Context, tag: TagRecord) -> tuple[TagSummary | None, str, str]:
    """(its summary, its user message, why the version-named tag is not a whole version: ""
    when it is one)."""
    if not tag.annotated:
        return None, "", "it is a lightweight tag (gitreg makes annotated tags)"
    summary, human, problem = parse_tag_block(tag.message)
    if summary is None:
        return None, human, problem
    with ctx.git.object_reader() as reader:
        problem = whole_problems(ctx, reader, [(tag.object, tag.target_type, tag.commit, tag.name, summary)])
    return summary, human, problem[tag.object]


def get(ctx: Context, version: str) -> VersionInfo:
    parse_version(version)
    tag = ctx.git.tag(version)
    if tag is None:
        raise VersionNotFound(version)
    summary, human, problem = tag_problem(ctx, tag)
    if summary is None or problem:
        raise NotAVersion(version, problem)
    ctx.sync_notes()
    return version_info(ctx, tag, summary, human, ctx.git.note_for(tag.object))


def signature(ctx: Context, version: str, allowed_signers: Path | str | None = None) -> SignatureInfo:
    """Whether the version's tag is signed, by whom, and whether git verifies it (trusted SSH
    keys from ``allowed_signers`` or git's ``gpg.ssh.allowedSignersFile``)."""
    if ctx.git.tag(version) is None:
        raise VersionNotFound(version)
    signers = Path(allowed_signers).resolve() if allowed_signers is not None else None
    check = ctx.git.tag_signature(version, signers)
    return SignatureInfo(
        signed=check.signed,
        verified=check.verified,
        signer=check.signer,
        format=check.format,
        reason=check.reason,
    )


def models(ctx: Context) -> list[str]:
    names = set(ctx.manifest().model.models)
    names.update(v.model for v in versions(ctx))
    return sorted(names)


def require_model(ctx: Context, model: str) -> None:
    if model not in models(ctx):
        raise ModelNotFound(model)
