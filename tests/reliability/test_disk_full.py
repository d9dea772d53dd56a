"""A full disk during `gitreg register`: a small tmpfs holds the registry repository. The error is
one line naming the file and the fix, the undo needs no free space, and `gitreg doctor --fix`
leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitreg.testing.cli import run_cli
from gitreg.testing.repos import git, init_bare, init_registry

pytestmark = pytest.mark.slow

TMPFS_BYTES = 3 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs (needs root: mount(8)); unmounted afterwards."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(mnt)],
        check=False,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _bundle(folder: Path, size: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "policy.pt").write_bytes(os.urandom(size))
    meta = {"algo": "DQN", "framework": "torch", "created_at": "2025-07-06T18:51:23+00:00"}
    (folder / "metadata.json").write_text(json.dumps(meta))
    return folder


# (what is too small, the bundle's size from the free space, the path the error names)
CASES = {
    "bigger-than-the-disk": (lambda free: free + 1024 * 1024, "models/policy/policy.pt"),
    "fits-the-tree-not-the-cache": (lambda free: free * 2 // 3, ".dvc/cache"),
    "8kb-left-after-the-copy": (lambda free: free - 5 * 4096, None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_register_on_a_full_disk_is_one_line_and_leaves_a_clean_state(
    small_disk: Path, tmp_path: Path, case: str
) -> None:
    repo = init_registry(
        small_disk / "registry", remote=tmp_path / "dvc-remote", origin=init_bare(tmp_path / "o.git")
    )
    manifest_before = (repo / "models.yaml").read_bytes()
    head_before = git(repo, "rev-parse", "HEAD")
    size_for, named = CASES[case]
    bundle = _bundle(tmp_path / "bundle", size_for(_free(small_disk)))

    res = run_cli("-C", str(repo), "register", str(bundle), "--model", "policy")

    assert res.returncode == 1, res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr  # no traceback, no DVC log line
    assert lines[0].startswith("error: no space left on device writing "), lines[0]
    assert lines[0].endswith("free space or move the repository"), lines[0]
    if named is not None:
        assert f"writing {named} " in lines[0]
    # the undo (renames only) already put everything back
    assert (repo / "models.yaml").read_bytes() == manifest_before
    assert not (repo / "models").exists()
    assert git(repo, "status", "--porcelain") == ""

    fix = run_cli("-C", str(repo), "doctor", "--fix")
    assert fix.returncode == 0, fix.stdout + fix.stderr
    assert git(repo, "tag", "--list") == ""  # no dangling tag
    assert git(repo, "rev-parse", "HEAD") == head_before
    assert git(repo, "status", "--porcelain") == ""
    assert (repo / "models.yaml").read_bytes() == manifest_before  # not half-written
    journal = repo / ".git" / "gitreg" / "journal"
    assert not journal.exists() or not any(journal.iterdir())
    leftovers = [p for p in repo.rglob("*.tmp") if ".git" not in p.parts[len(repo.parts) :][:1]]
    assert leftovers == []
    assert _free(small_disk) > TMPFS_BYTES // 2  # no half-copied bytes hold the disk
    assert run_cli("-C", str(repo), "doctor").returncode == 0
