"""`gitreg --repo URL COMMAND`: a registry read with no clone, through a cached bare mirror
(one per URL, blob-filtered where the server allows it, shared under a lock), models.yaml from
the remote's branch, bundle bytes straight from the DVC remote. Real git, a bare remote served
over file:// with filters allowed, a real DVC folder remote."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from gitreg.testing.cli import run_cli
from gitreg.testing.lifecycle import mark_validated
from gitreg.testing.repos import git, promote_pushed, register_pushed

V1 = "v2025-07-01--10h00"
V2 = "v2025-07-02--10h00"

pytestmark = pytest.mark.slow


@pytest.fixture
def remote(
    registry: Any, make_bundle: Callable[..., Path], bare_remote: Path, tmp_path: Path, monkeypatch
) -> str:
    """V1 (validated) in production, V2 registered, all pushed; the remote as a file:// URL
    whose upload-pack allows a blob filter; the mirror cache in a temp folder."""
    register_pushed(registry, make_bundle(1), V1)
    mark_validated(registry.root, V1)
    registry.git.push_notes("origin")
    promote_pushed(registry, V1)
    register_pushed(registry, make_bundle(2), V2)
    git(bare_remote, "config", "uploadpack.allowFilter", "true")
    monkeypatch.setenv("GITREG_CACHE_DIR", str(tmp_path / "cache"))
    return f"file://{bare_remote}"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd)


def test_read_commands_answer_from_the_remote_with_no_clone(remote: str, tmp_path: Path) -> None:
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()  # not a repository: nothing local is read
    rows = json.loads(cli("--repo", remote, "list", "--json", cwd=elsewhere).stdout)
    assert {r["version"]: (r["status"], r["stages"]) for r in rows} == {
        V1: ("validated", ["production"]),
        V2: ("registered", []),
    }
    resolved = json.loads(
        cli("--repo", remote, "resolve", "policy@production", "--json", cwd=elsewhere).stdout
    )
    assert resolved["version"] == V1 and resolved["set_by"]
    shown = json.loads(cli("--repo", remote, "show", "policy@latest", "--json", cwd=elsewhere).stdout)
    assert shown["version"] == V2
    history = json.loads(cli("--repo", remote, "history", "--json", cwd=elsewhere).stdout)
    assert [(h["stage"], h["version"]) for h in history] == [("production", V1)]
    status = json.loads(cli("--repo", remote, "status", "--json", cwd=elsewhere).stdout)
    assert status[0]["model"] == "policy"
    compared = json.loads(cli("--repo", remote, "compare", V1, V2, "--json", cwd=elsewhere).stdout)
    assert compared["versions"] == [V1, V2]
    out = tmp_path / "bundle"
    pulled = cli("--repo", remote, "pull", "policy@production", "--out", str(out), "--json", cwd=elsewhere)
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["version"] == V1 and (out / "metadata.json").is_file()
    check = cli("--repo", remote, "check", "--json", cwd=elsewhere)
    assert check.returncode == 0 and json.loads(check.stdout)["models"] == 1, check.stdout  # not 0 models


def test_the_mirror_is_one_per_url_blob_filtered_and_follows_the_remote(
    remote: str, registry: Any, tmp_path: Path
) -> None:
    assert cli("--repo", remote, "list").returncode == 0
    (mirror,) = (tmp_path / "cache" / "mirrors").glob("*.git")
    assert git(mirror, "config", "remote.origin.partialclonefilter") == "blob:none"
    assert git(mirror, "rev-parse", "--is-bare-repository") == "true"
    promote_pushed(registry, V2)  # the remote moves on
    resolved = json.loads(cli("--repo", remote, "resolve", "policy@production", "--json").stdout)
    assert resolved["version"] == V2
    assert list((tmp_path / "cache" / "mirrors").glob("*.git")) == [mirror]  # the same mirror, fetched


def test_concurrent_first_uses_share_one_mirror(remote: str, tmp_path: Path) -> None:
    with ThreadPoolExecutor(4) as pool:
        procs = list(pool.map(lambda _: cli("--repo", remote, "list", "--json"), range(4)))
    assert all(p.returncode == 0 for p in procs), [p.stderr for p in procs]
    assert all(len(json.loads(p.stdout)) == 2 for p in procs)
    assert len(list((tmp_path / "cache" / "mirrors").glob("*.git"))) == 1


def test_what_repo_cannot_do_is_one_line(remote: str) -> None:
    for args, said in (
        (["--repo", remote, "promote", V2, "production"], "needs a clone, not --repo"),
        (["--repo", remote, "--branch", "nope", "list"], "--branch nope: no such revision"),
        (["--branch", "main", "list"], "--branch goes with --repo"),
        (["--repo", "/nowhere/at/all.git", "list"], "error:"),
    ):
        proc = cli(*args)
        assert proc.returncode == 1, args
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and said in lines[0], (args, proc.stderr)


def test_a_branch_other_than_the_default(remote: str, registry: Any) -> None:
    git(registry.root, "push", "-q", "origin", "HEAD:refs/heads/staging-fleet")
    promote_pushed(registry, V2)  # main moves on; staging-fleet keeps V1 in production
    on_main = json.loads(cli("--repo", remote, "resolve", "policy@production", "--json").stdout)
    on_branch = json.loads(
        cli("--repo", remote, "--branch", "staging-fleet", "resolve", "policy@production", "--json").stdout
    )
    assert (on_main["version"], on_branch["version"]) == (V2, V1)
