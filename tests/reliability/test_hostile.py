"""Hostile inputs: each gets a clean one-line error (or is ignored) and changes nothing.

A YAML alias bomb in models.yaml, a 100 MB metadata.json, names with unicode look-alikes, `.dvc`
pointers that climb out of their folder, tags that look like versions but point elsewhere, and
a 50 MB webhook body."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gitreg.errors import GitregError, InvalidModelName, InvalidVersionName, ManifestError
from gitreg.manifest import loads
from gitreg.testing.cli import run_cli
from gitreg.testing.repos import git

V1 = "v2025-07-01--10h00"
V2 = "v2025-07-02--10h00"
V3 = "v2025-07-03--10h00"

BOMB = (
    "version: 1\n"
    'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))
    + "models: {}\n"
)


def snapshot(repo: Path) -> dict[str, Any]:
    """Everything a refused command must leave as it was."""
    files = {
        p.relative_to(repo).as_posix(): p.stat().st_size
        for p in repo.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(repo).parts[:1]
    }
    return {
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "files": files,
    }


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    err = (proc.stderr.strip() or proc.stdout.strip())[:2000]
    assert "error:" in err.splitlines()[0] and "Traceback" not in err, err
    return err


# -- YAML alias bomb -------------------------------------------------------------------------------
def test_an_alias_bomb_is_refused_at_once():
    t0 = time.perf_counter()
    with pytest.raises(ManifestError, match="alias"):
        loads(BOMB)
    assert time.perf_counter() - t0 < 2


def test_an_alias_bomb_in_models_yaml_breaks_check_and_promote_cleanly(registry, repo_dir, make_bundle):
    registry.register(make_bundle(1), "policy", version=V1)
    (repo_dir / "models.yaml").write_text(BOMB)
    git(repo_dir, "commit", "-qam", "a hostile models.yaml")
    before = snapshot(repo_dir)
    for args in (("check",), ("promote", V1, "production", "--direct", "--force")):
        t0 = time.perf_counter()
        err = one_line_error(run_cli(*args, cwd=repo_dir))
        assert "alias" in err, err
        assert time.perf_counter() - t0 < 20  # the CLI's start-up, not the bomb
        assert snapshot(repo_dir) == before


# -- a 100 MB metadata.json ------------------------------------------------------------------------
def test_a_100_mb_metadata_json_is_refused_fast_and_nothing_is_written(repo_dir, make_bundle):
    bundle = make_bundle(1)
    meta = bundle / "metadata.json"
    with open(meta, "wb") as f:  # sparse: 100 MB on paper, nothing on disk
        f.write(b'{"algo": "DQN", "description": "')
        f.seek(100 * 1024 * 1024)
        f.write(b'"}')
    assert meta.stat().st_size > 100 * 1024 * 1024
    before = snapshot(repo_dir)
    t0 = time.perf_counter()
    err = one_line_error(run_cli("register", str(bundle), "--model", "policy", cwd=repo_dir))
    assert time.perf_counter() - t0 < 30
    assert "metadata.json" in err and "the limit is" in err, err
    assert len(err.splitlines()) <= 2  # the error and at most a hint
    assert snapshot(repo_dir) == before  # no commit, no tag, no stray file, DVC cache unchanged


# -- unicode look-alikes ---------------------------------------------------------------------------
LOOKALIKE_MODELS = ["p\u043elicy", "pol\u200dicy", "\uff50olicy", "policy\u00a0", "po\u0301licy"]
LOOKALIKE_VERSIONS = [
    "v\uff12025-07-01--10h00",  # fullwidth 2
    "v2025-07-01--10h\u0660\u0660",  # Arabic-Indic zeros
    "v2025-07-01\u201310h00",  # en dash
    "v2025-07-01--10h00\u200d",  # zero-width joiner
    "\u0475" + V1[1:],  # Cyrillic izhitsa for v
]


@pytest.mark.parametrize("name", LOOKALIKE_MODELS)
def test_look_alike_model_names_are_refused(registry, repo_dir, make_bundle, name):
    bundle = make_bundle(1)
    before = snapshot(repo_dir)
    with pytest.raises(InvalidModelName):
        registry.register(bundle, name, version=V1)
    assert snapshot(repo_dir) == before


@pytest.mark.parametrize("name", LOOKALIKE_VERSIONS)
def test_look_alike_version_names_are_refused(registry, repo_dir, make_bundle, name):
    bundle = make_bundle(1)
    before = snapshot(repo_dir)
    with pytest.raises(InvalidVersionName):
        registry.register(bundle, "policy", version=name)
    with pytest.raises(InvalidVersionName):
        registry.get(name)
    assert snapshot(repo_dir) == before


def test_look_alikes_on_the_command_line_are_one_line_errors(repo_dir, make_bundle):
    bundle = make_bundle(1)
    before = snapshot(repo_dir)
    one_line_error(run_cli("register", str(bundle), "--model", LOOKALIKE_MODELS[0], cwd=repo_dir))
    one_line_error(
        run_cli("register", str(bundle), "-m", "policy", "--version", LOOKALIKE_VERSIONS[0], cwd=repo_dir)
    )
    one_line_error(run_cli("show", LOOKALIKE_VERSIONS[3], cwd=repo_dir))
    assert snapshot(repo_dir) == before


# -- forged pointers and tags ----------------------------------------------------------------------
def tag_message(repo: Path, version: str) -> str:
    return git(repo, "for-each-ref", "--format=%(contents)", f"refs/tags/{version}")


def forge_tag(repo: Path, name: str, commit: str, message: str) -> None:
    subprocess.run(
        ["git", "tag", "-a", name, commit, "-F", "-"], cwd=repo, input=message, text=True, check=True
    )


@pytest.mark.parametrize("bad_path", ["../../etc/passwd", "/etc/passwd"])
def test_a_pointer_that_leaves_its_folder_is_refused_by_pull_and_validate(
    registry, repo_dir, make_bundle, tmp_path, bad_path
):
    registry.register(make_bundle(1), "policy", version=V1)
    pointer = repo_dir / "models" / "policy" / "policy.pt.dvc"
    pointer.write_text(pointer.read_text().replace("path: policy.pt", f"path: {bad_path}"))
    git(repo_dir, "commit", "-qam", "tampered pointer")
    forge_tag(repo_dir, V2, "HEAD", tag_message(repo_dir, V1).replace(V1, V2))
    git(repo_dir, "checkout", "-q", "HEAD~1", "--", "models/policy/policy.pt.dvc")
    git(repo_dir, "commit", "-qam", "restore")
    before = snapshot(repo_dir)
    outside = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / "out" / "bundle"
    err = one_line_error(run_cli("pull", V2, "--out", str(out), cwd=repo_dir))
    assert "leaves its folder" in err, err
    # A tag whose pointer does not parse is no version (issue 15): validate refuses it too.
    err = one_line_error(run_cli("validate", V2, cwd=repo_dir))
    assert "is not a gitreg version" in err and "leaves its folder" in err, err
    assert not out.exists() and not out.parent.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == outside
    assert snapshot(repo_dir) == before


def test_tags_that_only_look_like_versions_are_ignored_or_refused(registry, repo_dir, make_bundle, tmp_path):
    registry.register(make_bundle(1), "policy", version=V1)
    first = git(repo_dir, "rev-list", "--max-parents=0", "HEAD")  # `gitreg init`: no models/ yet
    # a version's tag message copied onto a commit without the model folder
    forge_tag(repo_dir, V2, first, tag_message(repo_dir, V1).replace(V1, V2))
    # a version-named tag whose block names another version
    forge_tag(repo_dir, V3, "HEAD", tag_message(repo_dir, V1))
    git(repo_dir, "tag", "v2025-07-04--10h00", "HEAD")  # lightweight: not a version either
    before = snapshot(repo_dir)

    listed = json.loads(run_cli("list", "--json", cwd=repo_dir, check=True).stdout)
    versions = [row["version"] for row in (listed if isinstance(listed, list) else listed["versions"])]
    assert V3 not in versions and "v2025-07-04--10h00" not in versions
    assert V1 in versions
    for v in (V3, "v2025-07-04--10h00"):
        one_line_error(run_cli("show", v, cwd=repo_dir))
    out = tmp_path / "pulled"
    err = one_line_error(run_cli("pull", V2, "--out", str(out), cwd=repo_dir))
    assert "has no models/policy" in err, err
    one_line_error(run_cli("pull", V3, "--out", str(out), cwd=repo_dir))
    assert not out.exists()
    assert snapshot(repo_dir) == before


# -- a 50 MB webhook body --------------------------------------------------------------------------
def test_a_50_mb_webhook_body_is_413_and_wakes_nothing(tmp_path):
    from gitreg.serve.agent import Agent, AgentConfig
    from gitreg.serve.app import ServeOptions, create_app
    from gitreg.serve.slots import Served

    agent = Agent(AgentConfig(repo="file:///nowhere", cache=tmp_path))
    agent._slot("policy").swap_production(
        Served(
            model="policy", version=V1, commit="c" * 40, predict=lambda x: [[0.0] for _ in x], input_shape=[4]
        )
    )
    with TestClient(create_app(agent, ServeOptions(webhook_secret="s"), manage_agent=False)) as c:
        big = os.urandom(1024) * (50 * 1024)
        r = c.post("/hooks/git", content=big, headers={"X-Gitlab-Token": "s"})
        assert r.status_code == 413

        def chunks() -> Any:  # no content-length: counted as it streams
            for _ in range(50 * 16):
                yield big[:65536]

        r = c.post("/hooks/git", content=chunks(), headers={"X-Gitlab-Token": "s"})
        assert r.status_code == 413
        assert not agent._wake.is_set()
        assert c.get("/health").status_code == 200
        r = c.post("/predict", json={"inputs": [[0.0, 0.0, 0.0, 0.0]]})
        assert r.status_code == 200 and r.json()["version"] == V1


# -- metadata parsing: nothing but GitregError ----------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,  # deeper than any recursion limit
        b'{"algo": "x", "framework": "y", "created_at": "' + b"9" * 5000 + b'"}',
        b'{"algo": "x", "framework": "y", "created_at": "2025-07-06T18:51:23Z", "metrics": {"r": 1e999}}',
        b'{"a": 1, "a": 2}',
        b"\xff\xfe{}",
        '{"algo": "\ud800"}'.encode("utf-8", "surrogatepass"),
    ],
)
def test_hostile_metadata_raises_only_gitreg_errors(raw):
    from gitreg.metadata import parse_metadata

    with pytest.raises(GitregError):
        parse_metadata(raw)
