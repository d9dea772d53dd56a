"""Upkeep: cleanup (retention), doctor, and the guided demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gitreg.cli import views
from gitreg.cli._context import JsonOpt, registry
from gitreg.cli.output import Output
from gitreg.errors import GitregError


def cleanup(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; change nothing.")] = False,
    delete_tags: Annotated[
        bool,
        typer.Option(
            "--delete-tags",
            help="Also delete the cleaned versions' tags (and take them out of models.yaml); "
            "by default tags stay: the history is immutable.",
        ),
    ] = False,
    push: Annotated[
        bool,
        typer.Option(
            "--push", help="Push the models.yaml commit (before any bytes are removed) and tag deletions."
        ),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Apply each model's retention (keep_last, max_age_days): archive old versions holding no
    stage, remove their bytes from the DVC remote unless a kept version shares them."""
    result = registry().cleanup(dry_run=dry_run, delete_tags=delete_tags, push=push)
    Output(json=json).emit(result, views.cleanup_result)


def doctor(
    fix: Annotated[bool, typer.Option("--fix", help="Repair what can be repaired.")] = False,
    remote_check: Annotated[
        bool,
        typer.Option(
            "--remote-check",
            help="Check that every version's bytes are on the DVC remote (by default: the staged versions').",
        ),
    ] = False,
    offline: Annotated[
        bool,
        typer.Option("--offline", help="Do not ask the DVC remote for the staged versions' bytes."),
    ] = False,
    push: Annotated[
        bool, typer.Option("--push", help="With --fix: push version tags the Git remote lacks.")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Check the registry repo (tags, pointers, models.yaml, notes, locks, interrupted
    registrations and stage changes, unpushed tags, the staged versions' bytes on the DVC
    remote); --fix repairs. Exit 1 when problems remain."""
    if push and not fix:
        raise GitregError("--push needs --fix", "gitreg doctor --fix --push")
    if offline and remote_check:
        raise GitregError("--offline and --remote-check contradict each other", "use one of them")
    result = registry().doctor(fix=fix, remote_check=remote_check, push=push, offline=offline)
    Output(json=json).emit(result, views.doctor_report)
    if not result.ok:
        raise typer.Exit(1)


def demo(
    workdir: Annotated[
        Path | None, typer.Option(help="Folder for the throwaway registry (default: a new temp folder).")
    ] = None,
    keep: Annotated[bool, typer.Option(help="Keep the demo folder afterwards.")] = False,
) -> None:
    """Run the guided demo on a throwaway registry (local bare Git remote, local DVC remote)."""
    from gitreg.cli.demo import run_demo

    run_demo(workdir, keep=keep)
