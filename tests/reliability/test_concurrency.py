"""Many writers: 4 processes x 25 registrations into one repo; two clones promoting at once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitreg.registry import Registry
from gitreg.testing.cli import run_cli
from gitreg.testing.repos import git

pytestmark = pytest.mark.slow

WRITER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from gitreg.registry import Registry

    root, worker, count, scratch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    reg = Registry(root)
    meta = {"algo": "DQN", "framework": "torch", "created_at": "2025-07-06T18:51:23+00:00"}
    for i in range(count):
        b = scratch / f"w{worker}-{i}"
        b.mkdir(parents=True)
        (b / "policy.pt").write_bytes(f"worker {worker} bundle {i}".encode())
        (b / "metadata.json").write_text(json.dumps(meta))
        print(reg.register(b, "policy").version, flush=True)
    """
)


def test_four_processes_register_25_each(registry: Any, tmp_path: Path) -> None:
    root = registry.root
    workers = int(os.environ.get("GITREG_CONC_WORKERS", "4"))
    each = int(os.environ.get("GITREG_CONC_EACH", "25"))
    base_commits = int(git(root, "rev-list", "--count", "HEAD"))
    start = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), str(w), str(each), str(tmp_path / "scratch")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    reported: list[str] = []
    for p in procs:
        out, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-2000:]
        reported += out.split()
    elapsed = time.monotonic() - start
    total = workers * each
    print(f"{total} registrations by {workers} processes in {elapsed:.1f} s")
    assert len(reported) == total and len(set(reported)) == total
    tags = set(git(root, "tag", "--list").split())
    assert tags == set(reported)
    assert int(git(root, "rev-list", "--count", "HEAD")) == base_commits + total
    on_branch = set(git(root, "rev-list", "HEAD").split())
    tag_commits = set(git(root, "rev-list", "--no-walk", *sorted(tags)).split())
    assert len(tag_commits) == total and tag_commits <= on_branch  # no lost commit
    fsck = subprocess.run(["git", "fsck", "--strict"], check=False, cwd=root, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    assert git(root, "status", "--porcelain") == ""
    assert len(Registry(root).versions()) == total
    report = Registry(root).doctor(fix=False)
    assert {f.check for f in report.findings if f.severity != "info"} <= {"tag-not-pushed"}


def test_two_clones_promote_loser_fails_cleanly(
    registry: Any, make_bundle: Callable[..., Path], tmp_path: Path, bare_remote: Path
) -> None:
    a = registry.register(make_bundle(1, policy=b"alpha"), "alpha", push=True)
    b = registry.register(make_bundle(2, policy=b"beta"), "beta", push=True)
    one, two = tmp_path / "one", tmp_path / "two"
    for clone in (one, two):
        subprocess.run(["git", "clone", "-q", str(bare_remote), str(clone)], check=True)
    win = run_cli("-C", str(one), "promote", a.version, "staging", "--direct", "--push")
    assert win.returncode == 0, win.stderr
    head_before = git(two, "rev-parse", "HEAD")
    lose = run_cli("-C", str(two), "promote", b.version, "staging", "--direct", "--push")
    assert lose.returncode == 1
    lines = lose.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: push to origin refused"), lose.stderr
    assert "git pull --rebase" in lines[0]
    # nothing half-done in the loser's clone: no local commit, clean models.yaml
    assert git(two, "rev-parse", "HEAD") == head_before
    assert git(two, "status", "--porcelain") == ""
    git(two, "pull", "-q", "--rebase")
    again = run_cli("-C", str(two), "promote", b.version, "staging", "--direct", "--push")
    assert again.returncode == 0, again.stderr
    final = git(bare_remote, "show", "main:models.yaml")
    stages = yaml.safe_load(final)["models"]
    assert stages["alpha"]["stages"]["staging"] == a.version  # nothing silently overwritten
    assert stages["beta"]["stages"]["staging"] == b.version
