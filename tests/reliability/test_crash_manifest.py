"""SIGKILL the commands that change models.yaml (promote, rollback, cleanup) and the one that
records validation (validate --record) at every checkpoint and at random moments: each leaves
the old state or the new one, `gitreg doctor` reports what is left over, `--fix` makes it clean,
and the command works again afterwards."""

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

from gitreg import manifest as mf
from gitreg.lifecycle import MANIFEST_CRASH_POINTS
from gitreg.registry import Registry
from gitreg.testing.cli import GITREG, run_cli
from gitreg.testing.lifecycle import set_retention
from gitreg.testing.repos import git

pytestmark = pytest.mark.slow


def _doctor(root: Path, *args: str) -> tuple[int, dict[str, Any]]:
    proc = run_cli("-C", str(root), "doctor", "--json", *args)
    return proc.returncode, json.loads(proc.stdout)


def _staging(root: Path) -> str | None:
    return mf.load(root / mf.MANIFEST_FILE).model.models["policy"].stages.get("staging")


def _assert_clean(root: Path) -> None:
    """doctor --fix leaves a clean repository whose models.yaml is HEAD's, valid."""
    rc, report = _doctor(root, "--fix")
    assert rc == 0, report
    again = Registry(root).doctor()
    assert again.ok, again.findings
    assert git(root, "status", "--porcelain", "--untracked-files=all") == ""
    journal = root / ".git" / "gitreg" / "manifest-journal"
    assert not journal.exists() or not any(journal.iterdir())
    assert (root / mf.MANIFEST_FILE).read_text() == git(root, "show", f"HEAD:{mf.MANIFEST_FILE}") + "\n"
    mf.load(root / mf.MANIFEST_FILE)


@pytest.fixture
def staged(registry: Registry, make_bundle: Any, clock: Any) -> tuple[Path, list[str]]:
    """Three versions of `policy`; staging was v1, then v2 (two direct commits); keep_last 1."""
    versions = []
    for seed in range(3):
        versions.append(registry.register(make_bundle(seed), "policy", push=True).version)
        clock.advance(days=1)
    registry.promote(versions[0], "staging", direct=True)
    registry.promote(versions[1], "staging", direct=True)
    set_retention(registry, keep_last=1)
    return registry.root, versions


def _command(name: str, v: list[str]) -> tuple[list[str], Any]:
    """The CLI arguments and a check that the change is in models.yaml."""
    if name == "promote":
        return ["promote", v[2], "staging", "--direct"], lambda root: _staging(root) == v[2]
    if name == "rollback-revert":
        return ["rollback", "policy", "--stage", "staging", "--direct"], lambda root: _staging(root) == v[0]
    if name == "rollback-to":
        return (
            ["rollback", "policy", "--stage", "staging", "--to", v[0], "--direct"],
            lambda root: _staging(root) == v[0],
        )
    assert name == "cleanup"
    return ["cleanup"], lambda root: v[0] in mf.load(root / mf.MANIFEST_FILE).model.models["policy"].archived


@pytest.mark.parametrize("point", MANIFEST_CRASH_POINTS)
@pytest.mark.parametrize("name", ["promote", "rollback-revert", "rollback-to", "cleanup"])
def test_kill_manifest_change_at_checkpoint(name: str, point: str, staged: tuple[Path, list[str]]) -> None:
    root, versions = staged
    head_before = git(root, "rev-parse", "HEAD")
    args, changed = _command(name, versions)
    proc = run_cli("-C", str(root), *args, env={"GITREG_TEST_CRASH_AT": point})
    assert proc.returncode == -signal.SIGKILL, proc.stderr

    rc, report = _doctor(root)
    assert rc == 1 and not report["ok"]
    found = {f["check"]: f for f in report["findings"]}
    assert "interrupted-manifest-change" in found, report
    assert found["interrupted-manifest-change"]["fixable"]
    assert "stale-lock" in found

    _assert_clean(root)
    head = git(root, "rev-parse", "HEAD")
    if point == "manifest-journaled":  # killed before the branch moved: the old state
        assert head == head_before
        assert not changed(root)
        assert run_cli("-C", str(root), *args).returncode == 0
    else:  # the commit was made: the new state, exactly one commit on top
        assert git(root, "rev-parse", "HEAD~1") == head_before
    assert changed(root)
    _assert_clean(root)


def test_uncommitted_manifest_without_journal_is_information(staged: tuple[Path, list[str]]) -> None:
    """A human edit of models.yaml is not a crash: reported as information, never 'repaired'."""
    root, _ = staged
    path = root / mf.MANIFEST_FILE
    edited = path.read_text() + "# a comment being written\n"
    path.write_text(edited)
    rc, report = _doctor(root, "--fix")
    assert rc == 0, report
    found = [f for f in report["findings"] if f["check"] == "manifest-uncommitted"]
    assert found and found[0]["severity"] == "info" and not found[0]["fixed"]
    assert path.read_text() == edited


def test_manifest_edited_after_a_crash_is_not_overwritten(staged: tuple[Path, list[str]]) -> None:
    root, versions = staged
    args, _ = _command("promote", versions)
    proc = run_cli("-C", str(root), *args, env={"GITREG_TEST_CRASH_AT": "manifest-committed"})
    assert proc.returncode == -signal.SIGKILL
    path = root / mf.MANIFEST_FILE
    edited = path.read_text() + "# edited after the crash\n"
    path.write_text(edited)
    rc, report = _doctor(root, "--fix")
    assert rc == 1
    found = [f for f in report["findings"] if f["check"] == "interrupted-manifest-change"]
    assert found and found[0]["severity"] == "error" and not found[0]["fixed"]
    assert path.read_text() == edited  # the edit survives


def test_kill_manifest_changes_at_random_moments(staged: tuple[Path, list[str]]) -> None:
    """SIGKILL the process group (gitreg and its git children) of promote/rollback after a
    random delay: after each, doctor --fix leaves a clean repo with staging at a version that
    some command really set."""
    root, versions = staged
    rng = random.Random(int(os.environ.get("GITREG_CRASH_SEED", "11")))
    runs = int(os.environ.get("GITREG_CRASH_RUNS", "8"))
    start = time.monotonic()
    run_cli("-C", str(root), "promote", versions[2], "staging", "--direct", check=True)
    span = time.monotonic() - start
    outcomes = []
    for i in range(runs):
        args = (
            ["promote", versions[i % 3], "staging", "--direct"]
            if i % 2
            else ["rollback", "policy", "--stage", "staging", "--direct"]
        )
        p = subprocess.Popen(
            [GITREG, "-C", str(root), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            p.communicate(timeout=rng.uniform(0.3 * span, 1.1 * span))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
        outcomes.append(p.returncode)
        _assert_clean(root)
        assert _staging(root) in versions
    assert any(rc != 0 for rc in outcomes), outcomes  # some runs were really killed


@pytest.mark.parametrize("point", ["validate-checked", "validate-recorded"])
def test_kill_validate_record(point: str, registry: Registry, make_bundle: Any) -> None:
    root = registry.root
    version = registry.register(make_bundle(0), "policy", push=True).version
    proc = run_cli("-C", str(root), "validate", version, "--record", env={"GITREG_TEST_CRASH_AT": point})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    _assert_clean(root)
    status = Registry(root).get(version).status
    assert status == ("validated" if point == "validate-recorded" else "registered")
    run_cli("-C", str(root), "validate", version, "--record", check=True)
    assert Registry(root).get(version).status == "validated"
