"""SIGKILL `gitreg register` at every checkpoint and at random moments: `gitreg doctor` reports
the state, `--fix` restores a clean one, and no version reported registered is ever missing."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from gitreg.registry import CRASH_POINTS, Registry
from gitreg.testing.cli import GITREG, run_cli
from gitreg.testing.repos import git

pytestmark = pytest.mark.slow


def _bundle(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "policy.pt").write_bytes(f"weights-{n}-".encode() * 50)
    meta = {"algo": "DQN", "framework": "torch", "created_at": "2025-07-06T18:51:23+00:00"}
    (folder / "metadata.json").write_text(json.dumps(meta))
    return folder


def _doctor(root: Path, *args: str) -> tuple[int, dict[str, Any]]:
    proc = run_cli("-C", str(root), "doctor", "--json", *args)
    return proc.returncode, json.loads(proc.stdout)


def _assert_clean(root: Path, reported: set[str]) -> None:
    rc, report = _doctor(root, "--fix", "--push")
    assert rc == 0, report
    again = Registry(root).doctor()
    assert again.ok, again.findings
    assert git(root, "status", "--porcelain", "--untracked-files=all") == ""
    gd = root / ".git" / "gitreg"
    for sub in ("journal", "stash"):
        assert not (gd / sub).exists() or not any((gd / sub).iterdir()), sub
    tags = set(git(root, "tag", "--list").split())
    assert reported <= tags, f"reported but missing: {reported - tags}"
    commits = {git(root, "rev-list", "-n1", t) for t in tags}  # every tag's commit is on the branch
    on_branch = set(git(root, "rev-list", "HEAD").split())
    assert commits <= on_branch
    listed = {v.version for v in Registry(root).versions()}
    assert listed == tags


@pytest.fixture
def seeded(registry: Any, tmp_path: Path) -> tuple[Path, set[str]]:
    """A registry with one version of `policy` on the remote (so register has a folder to stash)."""
    r = registry.register(_bundle(tmp_path / "seed", 0), "policy", push=True)
    return registry.root, {r.version}


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill_at_checkpoint(point: str, seeded: tuple[Path, set[str]], tmp_path: Path) -> None:
    root, reported = seeded
    old_policy = (root / "models/policy/policy.pt").read_bytes()
    proc = run_cli(
        "-C", str(root), "register", str(_bundle(tmp_path / "b1", 1)), "-m", "policy",
        env={"GITREG_TEST_CRASH_AT": point},
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    rc, report = _doctor(root)
    assert rc == 1 and not report["ok"]
    found = {f["check"] for f in report["findings"]}
    assert "stale-lock" in found
    tagged = point in ("tagged", "done")
    if point not in ("locked", "done"):
        assert "interrupted-register" in found
    if tagged:
        assert "tag-not-pushed" in found
    _assert_clean(root, reported)
    tags = set(git(root, "tag", "--list").split())
    assert len(tags) == (2 if tagged else 1)
    if not tagged:  # undone: the folder is the previous version's again
        assert (root / "models/policy/policy.pt").read_bytes() == old_policy
    # the registry works afterwards
    again = Registry(root).register(_bundle(tmp_path / "b2", 2), "policy")
    assert again.version in set(git(root, "tag", "--list").split())


def test_kill_first_registration_of_a_model(registry: Any, tmp_path: Path) -> None:
    """No folder to stash: the new model's folder and its models.yaml entry are removed."""
    root = registry.root
    manifest = (root / "models.yaml").read_bytes()
    proc = run_cli(
        "-C", str(root), "register", str(_bundle(tmp_path / "b", 1)), "-m", "fresh",
        env={"GITREG_TEST_CRASH_AT": "uploaded"},
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL
    assert (root / "models/fresh").exists()
    _assert_clean(root, set())
    assert not (root / "models/fresh").exists()
    assert (root / "models.yaml").read_bytes() == manifest


def test_kill_at_random_moments(seeded: tuple[Path, set[str]], tmp_path: Path) -> None:
    """SIGKILL the whole process group (gitreg and its git children) after a random delay."""
    root, reported = seeded
    rng = random.Random(int(os.environ.get("GITREG_CRASH_SEED", "7")))
    runs = int(os.environ.get("GITREG_CRASH_RUNS", "8"))
    # How long an uninterrupted registration takes here: the delays spread over it.
    start = time.monotonic()
    ok = run_cli("-C", str(root), "register", str(_bundle(tmp_path / "t", 999)), "-m", "policy", check=True)
    span = time.monotonic() - start
    reported.add(ok.stdout.strip())
    _assert_clean(root, reported)
    outcomes = []
    for i in range(runs):
        delay = rng.uniform(0.2 * span, 1.1 * span)
        p = subprocess.Popen(
            [GITREG, "-C", str(root), "register", str(_bundle(tmp_path / f"r{i}", 100 + i)), "-m", "policy"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, _ = p.communicate(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, _ = p.communicate()
        if p.returncode == 0:
            reported.add(out.strip())
        outcomes.append(p.returncode)
        _assert_clean(root, reported)
    assert any(rc != 0 for rc in outcomes), outcomes  # at least some runs were really killed
