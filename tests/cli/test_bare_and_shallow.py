"""End-to-end: registries without a working tree or without their whole history.

A bare mirror (the deploy agent's, a server-side hook's) reads models.yaml from its branch
through git: `list` shows the stages and `check` checks the branch's manifest. A shallow clone
holds part of the history and tags: `list`, `show` and `history` refuse and say what to run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitreg.testing.cli import run_cli
from gitreg.testing.lifecycle import P1, P2, P3, Repo, commit_manifest, direct, make_repo
from gitreg.testing.repos import git

pytestmark = pytest.mark.slow  # real registries, real git

FIX = "git fetch --unshallow --tags"


@pytest.fixture
def repo(tmp_path, tmp_path_factory, monkeypatch) -> Repo:
    repo = make_repo(tmp_path, tmp_path_factory, monkeypatch)
    direct(repo, P1, "production")
    direct(repo, P2, "staging")
    repo.push_all()
    return repo


def mirror_of(repo: Repo, tmp_path: Path) -> Path:
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "clone", "-q", "--mirror", str(repo.remote), str(mirror))
    return mirror


def test_list_in_a_bare_mirror_shows_the_branch_stages(repo: Repo, tmp_path: Path):
    mirror = mirror_of(repo, tmp_path)
    proc = run_cli("-C", str(mirror), "list", "--json")
    assert proc.returncode == 0, proc.stderr
    stages = {row["version"]: row["stages"] for row in json.loads(proc.stdout)}
    assert stages[P1] == ["production"]
    assert stages[P2] == ["staging"]
    table = run_cli("-C", str(mirror), "list")
    assert table.returncode == 0, table.stderr
    assert any(P1 in ln and "production" in ln for ln in table.stdout.splitlines()), table.stdout


def test_check_in_a_bare_mirror_checks_the_branch_manifest(repo: Repo, tmp_path: Path):
    mirror = mirror_of(repo, tmp_path)
    good = run_cli("-C", str(mirror), "check")
    assert good.returncode == 0, good.stderr
    assert "models.yaml: ok (" in good.stdout and "(0 models)" not in good.stdout, good.stdout

    text = (repo.path / "models.yaml").read_text()
    assert "traffic" not in text
    commit_manifest(
        repo, text.replace(f"staging: {P2}", f"staging: {P2}\n    canary: {{version: {P3}, traffic: true}}")
    )
    repo.push_all()
    git(mirror, "fetch", "-q", "--prune", "origin")
    bad = run_cli("-C", str(mirror), "check")
    assert bad.returncode == 1, bad.stdout
    assert "canary.traffic: must be a number from 0 to 100, not true" in bad.stderr, bad.stderr


def test_check_in_a_bare_repository_without_a_manifest_fails(tmp_path: Path):
    bare = tmp_path / "empty.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    proc = run_cli("-C", str(bare), "check")
    assert proc.returncode == 1, proc.stdout
    assert "models.yaml: error: does not exist" in proc.stderr, proc.stderr


@pytest.mark.parametrize("command", [["list"], ["list", "--json"], ["show", P1], ["history"]])
def test_a_shallow_clone_refuses_to_answer_from_partial_history(
    repo: Repo, tmp_path: Path, command: list[str]
):
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo.remote}", str(shallow))
    assert git(shallow, "rev-parse", "--is-shallow-repository") == "true"
    proc = run_cli("-C", str(shallow), *command)
    assert proc.returncode == 1, proc.stdout
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "is a shallow clone" in lines[0] and FIX in lines[0], lines[0]

    git(shallow, "fetch", "-q", "--unshallow", "--tags")  # the fix works
    fixed = run_cli("-C", str(shallow), *command)
    assert fixed.returncode == 0, fixed.stderr
