"""Validation records (notes under refs/notes/gitreg) come with the registry: a plain `git
clone` fetches no notes, so gitreg takes them in itself — on the first read it configures the
remote's fetch refspec and fetches them once; later `git fetch` / `git pull` bring them; `check`
and `promote` fetch when a version they need validated is not, here."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gitreg.testing.cli import run_cli
from gitreg.testing.lifecycle import mark_validated
from gitreg.testing.repos import git, register_pushed

V1 = "v2025-07-01--10h00"
V2 = "v2025-07-02--10h00"
V3 = "v2025-07-03--10h00"


def statuses(repo: Path) -> dict[str, str]:
    proc = run_cli("-C", str(repo), "list", "--json", check=True)
    return {row["version"]: row["status"] for row in json.loads(proc.stdout)}


def validate_on_origin(registry: Any, version: str) -> None:
    """What CI does on tag push: a passing record on the tag, pushed to the remote's notes."""
    mark_validated(registry.root, version)
    registry.git.push_notes("origin")


def test_a_fresh_clone_shows_validated_versions_without_any_git_command(
    registry: Any, make_bundle: Callable[..., Path], bare_remote: Path, tmp_path: Path
) -> None:
    for i, v in enumerate((V1, V2, V3), 1):
        register_pushed(registry, make_bundle(i), v)
    validate_on_origin(registry, V1)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare_remote), str(clone))
    assert git(clone, "for-each-ref", "refs/notes/") == ""  # git itself brought none

    assert statuses(clone) == {V1: "validated", V2: "registered", V3: "registered"}
    assert "+refs/notes/gitreg*:refs/notes/remotes/origin/gitreg*" in git(
        clone, "config", "--get-all", "remote.origin.fetch"
    )
    # later records arrive with a plain `git fetch` (the refspec gitreg configured) ...
    validate_on_origin(registry, V2)
    git(clone, "fetch", "-q")
    assert statuses(clone)[V2] == "validated"
    # ... and a record made on the remote since that fetch is fetched by promote itself
    validate_on_origin(registry, V3)
    promoted = run_cli("-C", str(clone), "promote", V3, "production", "--direct")
    assert promoted.returncode == 0, promoted.stderr
    assert f"production: {V3}" in (clone / "models.yaml").read_text()


def test_local_and_remote_records_are_merged_neither_lost(
    registry: Any, make_bundle: Callable[..., Path], bare_remote: Path, tmp_path: Path
) -> None:
    register_pushed(registry, make_bundle(1), V1)
    register_pushed(registry, make_bundle(2), V2)
    validate_on_origin(registry, V1)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare_remote), str(clone))
    git(clone, "config", "user.name", "Clone")
    git(clone, "config", "user.email", "clone@example.com")
    assert statuses(clone)[V1] == "validated"
    mark_validated(clone, V2)  # a record made here, not pushed
    validate_on_origin(registry, V1)  # the remote's notes move on too (a re-validation)
    git(clone, "fetch", "-q")
    assert statuses(clone) == {V1: "validated", V2: "validated"}
    assert git(clone, "status", "--porcelain") == ""


def test_check_fetches_the_records_it_lacks_and_says_where_it_looked(
    registry: Any, make_bundle: Callable[..., Path], bare_remote: Path, tmp_path: Path
) -> None:
    register_pushed(registry, make_bundle(1), V1)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare_remote), str(clone))
    run_cli("-C", str(clone), "promote", V1, "production", "--direct", "--force", check=True)
    assert "refs/notes/gitreg" in git(clone, "config", "--get-all", "remote.origin.fetch")
    git(clone, "fetch", "-q")  # the remote has no notes yet: the refspec gitreg added matches nothing
    bad = run_cli("-C", str(clone), "check")
    assert bad.returncode == 1
    assert "refs/notes/gitreg" in bad.stdout + bad.stderr  # where it looked, not just "re-validate"
    validate_on_origin(registry, V1)
    good = run_cli("-C", str(clone), "check")
    assert good.returncode == 0, good.stdout + good.stderr
