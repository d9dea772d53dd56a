"""Versions: init, register, list, show, resolve, compare, pull, validate."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer

from gitreg.cli import views
from gitreg.cli._context import (
    AllowArchitectureOpt,
    AllowedSignersOpt,
    JsonOpt,
    RefOpt,
    VersionArg,
    architectures,
    registry,
    state,
    trust_signers,
)
from gitreg.cli._progress import TransferProgress
from gitreg.cli.output import Output
from gitreg.errors import GitregError


def init(
    remote: Annotated[
        str | None,
        typer.Option(
            help="DVC remote: a folder path or s3://bucket/prefix. Default: a local folder outside the repo."
        ),
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="S3-compatible endpoint (MinIO, moto, …) for an s3:// remote.")
    ] = None,
    ci: Annotated[str, typer.Option(help="CI templates to write: github, gitlab or none.")] = "github",
    json: JsonOpt = False,
) -> None:
    """Make this folder a registry: Git, DVC and its remote, models.yaml, CI templates; one commit."""
    from gitreg.registry import Registry

    result = Registry.init(state.path, remote=remote, endpoint_url=endpoint_url, ci=ci)
    Output(json=json).emit(result, views.init_result)


def register(
    bundle_dir: Annotated[
        Path, typer.Argument(help="Bundle folder: policy.pt + metadata.json (+ more files).")
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="Model name, e.g. policy.")],
    version: Annotated[
        str | None, typer.Option(help="Explicit version name (default: now, UTC: v2025-07-06--18h51).")
    ] = None,
    message: Annotated[str | None, typer.Option("--message", help="A note kept in the tag message.")] = None,
    push: Annotated[bool, typer.Option(help="Push the commit and tag to the Git remote.")] = False,
    sign: Annotated[
        bool,
        typer.Option(
            "--sign", help="Sign the tag (git tag -s: SSH or GPG as gpg.format and user.signingkey say)."
        ),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Register a bundle as a new version: upload its bytes with DVC, commit the pointers, tag."""
    reg = registry()
    with TransferProgress() as progress:
        result = reg.register(
            bundle_dir, model, version=version, message=message, push=push, progress=progress, sign=sign
        )
    Output(json=json).emit(result, views.register_result)


def list_(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    stage: Annotated[str | None, typer.Option(help="Only versions holding this stage.")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only versions with this status: registered, validated, failed.")
    ] = None,
    limit: Annotated[int, typer.Option(min=0, help="At most N versions, newest first; 0 for all.")] = 50,
    json: JsonOpt = False,
) -> None:
    """List versions, newest first (reads tags, notes and models.yaml in a few git calls)."""
    reg = registry()
    reg.require_full_history("list")
    out = Output(json=json)
    if out.json:  # the rows as JSON text, from the list cache: no model per row
        out.json_bytes(reg.versions_json(model, status, stage, limit or None))
        return
    views.version_list(out, reg.versions(model, status, stage, limit or None))


def show(
    version: VersionArg,
    allowed_signers: Annotated[
        Path | None,
        typer.Option(help="SSH allowed-signers file to verify the tag's signature with."),
    ] = None,
    ref: RefOpt = None,
    json: JsonOpt = False,
) -> None:
    """Everything about one version: metadata, metrics, files, stages, validation, lineage, signer."""
    reg = registry()
    reg.require_full_history("show")
    version = reg.version_of(version, ref)
    info = reg.get(version)
    info.signature = reg.signature(version, allowed_signers)
    Output(json=json).emit(info, views.version_detail)


def resolve(
    reference: VersionArg,
    ref: RefOpt = None,
    json: JsonOpt = False,
) -> None:
    """What a reference names: model, stage, version, commit, tag, files (md5, size), validation
    status, and the commit of models.yaml that set the stage."""
    reg = registry()
    reg.require_full_history("resolve")
    Output(json=json).emit(reg.resolve(reference, ref), views.resolution)


def compare(
    versions: Annotated[
        list[str], typer.Argument(help="Two or more versions or references (policy@production).")
    ],
    ref: RefOpt = None,
    json: JsonOpt = False,
) -> None:
    """Metrics side by side with the winner per metric, and the parameters that differ."""
    reg = registry()
    Output(json=json).emit(reg.compare([reg.version_of(v, ref) for v in versions]), views.comparison)


def pull(
    version: VersionArg,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Target folder (default ./VERSION).")
    ] = None,
    ref: RefOpt = None,
    json: JsonOpt = False,
) -> None:
    """Materialize a version's bundle into a folder, every file's md5 verified; no checkout."""
    reg = registry()
    version = reg.version_of(version, ref)
    with TransferProgress() as progress:
        result = reg.pull(version, out, progress=progress)
    Output(json=json).emit(result, views.pull_result)


def validate(
    version: VersionArg,
    record: Annotated[
        bool, typer.Option(help="Store the result on the tag (git notes, refs/notes/gitreg).")
    ] = False,
    push: Annotated[bool, typer.Option(help="Push the notes to the Git remote (with --record).")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds allowed for loading and the forward pass.")] = 120.0,
    memory_mb: Annotated[int, typer.Option(help="Memory limit (MiB) of the loading process.")] = 8192,
    allow_architecture: AllowArchitectureOpt = None,
    require_signed: Annotated[
        bool, typer.Option(help="Refuse a version whose tag signature does not verify (git verify-tag).")
    ] = False,
    allowed_signers: AllowedSignersOpt = None,
    ref: RefOpt = None,
    json: JsonOpt = False,
) -> None:
    """Check a version: digests, metadata, safe load in a sandbox, a forward pass. Exit 1 on failure."""
    if push and not record:
        raise GitregError("--push needs --record", "gitreg validate VERSION --record --push")
    trust_signers(allowed_signers)
    reg = registry()
    version = reg.version_of(version, ref)
    with TransferProgress() as progress:
        result = reg.validate(
            version,
            record=record,
            push=push,
            timeout_s=timeout,
            memory_mb=memory_mb,
            progress=progress,
            allow_architectures=architectures(allow_architecture),
            require_signed=require_signed,
        )
    Output(json=json).emit(result, functools.partial(views.validation, recorded=record))
    if not result.passed:
        raise typer.Exit(1)
