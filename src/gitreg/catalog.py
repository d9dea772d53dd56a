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
from gitreg.errors import ModelNotFound, UnknownStatus, VersionNotFound
from gitreg.gitrepo import TagRecord
from gitreg.metadata import (
    FileDigest,
    TagSummary,
    ValidationRecord,
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
    notes = ctx.git.notes() if tags else {}
    result: list[VersionInfo] = []
    for tag in tags:
        summary, human = parse_tag_message(tag.message)
        if summary is None or summary.version != tag.name:
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


def get(ctx: Context, version: str) -> VersionInfo:
    parse_version(version)
    tag = ctx.git.tag(version)
    if tag is None or not tag.annotated:
        raise VersionNotFound(version)
    summary, human = parse_tag_message(tag.message)
    if summary is None or summary.version != version:
        raise VersionNotFound(version)
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
