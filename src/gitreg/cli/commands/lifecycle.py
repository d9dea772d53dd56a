"""Stages: promote, deploy, rollback, check, history, status."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from gitreg.cli import views
from gitreg.cli._context import AllowedSignersOpt, JsonOpt, registry, trust_signers
from gitreg.cli.output import Output

DirectOpt = Annotated[
    bool, typer.Option("--direct", help="Commit on the current branch instead of opening a pull request.")
]
PushOpt = Annotated[bool, typer.Option("--push", help="With --direct: push the branch to the Git remote.")]


def promote(
    version: Annotated[
        str, typer.Argument(help="The version to move (v2025-07-06--18h51, or a reference: policy@staging).")
    ],
    stage: Annotated[
        str | None, typer.Argument(help="staging, production or archived (omit with --canary).")
    ] = None,
    canary: Annotated[
        float | None, typer.Option(help="Make VERSION the model's canary with this share of traffic (%).")
    ] = None,
    direct: DirectOpt = False,
    push: PushOpt = False,
    force: Annotated[
        bool, typer.Option(help="Allow production/canary without a passing validation record.")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Change a version's stage in models.yaml: a branch + pull request (gh/glab), or --direct."""
    result = registry().promote(version, stage, canary=canary, direct=direct, push=push, force=force)
    Output(json=json).emit(result, views.change_result)


def deploy(
    version: Annotated[
        str, typer.Argument(help="The version to put in production (or a reference: policy@staging).")
    ],
    canary: Annotated[
        float | None, typer.Option(help="Deploy as a canary with this share of traffic (%) instead.")
    ] = None,
    direct: DirectOpt = False,
    push: PushOpt = False,
    force: Annotated[bool, typer.Option(help="Allow a version without a passing validation record.")] = False,
    json: JsonOpt = False,
) -> None:
    """Promote VERSION to production (or --canary PCT): a pull request, or --direct."""
    result = registry().deploy(version, canary=canary, direct=direct, push=push, force=force)
    Output(json=json).emit(result, views.change_result)


def rollback(
    model: Annotated[str, typer.Argument(help="The model, e.g. policy.")],
    stage: Annotated[
        str, typer.Option(help="The stage to roll back: production, staging or canary.")
    ] = "production",
    to: Annotated[str | None, typer.Option(help="Set this older version explicitly instead.")] = None,
    direct: DirectOpt = False,
    push: PushOpt = False,
    json: JsonOpt = False,
) -> None:
    """Undo the last change of a stage: `git revert` of the commit that made it (PR or --direct)."""
    result = registry().rollback(model, stage=stage, to=to, direct=direct, push=push)
    Output(json=json).emit(result, views.change_result)


def check(
    base: Annotated[
        str | None, typer.Option(help="The pull request's target (e.g. origin/main) to compare against.")
    ] = None,
    require_signed: Annotated[
        bool, typer.Option(help="Production and canary tags must carry a signature that verifies.")
    ] = False,
    allowed_signers: AllowedSignersOpt = None,
    json: JsonOpt = False,
) -> None:
    """Check models.yaml as a pull request leaves it; exit 1 on any problem (GitHub annotations in CI)."""
    trust_signers(allowed_signers)
    report = registry().check(base, require_signed=require_signed)
    out = Output(json=json)
    out.emit(report, views.check_report)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        views.github_annotations(out, report)
    if not report.ok:
        raise typer.Exit(1)


def history(
    model: Annotated[str | None, typer.Argument(help="Only this model (default: all).")] = None,
    json: JsonOpt = False,
) -> None:
    """Every stage change from `git log -- models.yaml`: when, who, from -> to, commit, PR."""
    reg = registry()
    reg.require_full_history("history")
    Output(json=json).emit(reg.history(model), views.history)


def status(
    server: Annotated[
        str | None, typer.Option(help="A running `gitreg serve` (URL): what it serves next to what it wants.")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Per model: what each stage holds, its status and age, and the last change (or a server's view)."""
    out = Output(json=json)
    if server is not None:
        from gitreg.cli.commands.serving import fetch_health

        out.emit(fetch_health(server), views.server_status)
        return
    out.emit(registry().status(), views.status)
