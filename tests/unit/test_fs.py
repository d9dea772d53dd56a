"""The one atomic write (gitreg.fs) and empty-folder cleanup."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gitreg import fs


def test_atomic_write_creates_replaces_and_keeps_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    fs.atomic_write(path, b"one")
    assert path.read_bytes() == b"one" and path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o600)
    inode = path.stat().st_ino
    fs.atomic_write(path, b"two")
    assert path.read_bytes() == b"two" and path.stat().st_mode & 0o777 == 0o600
    assert path.stat().st_ino != inode  # renamed over, never written in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_a_failed_write_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f.txt"
    fs.atomic_write(path, b"old")

    def broken(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="No space"):
        fs.atomic_write(path, b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_remove_empty_parents_stops_at_the_root_and_at_content(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (tmp_path / "a" / "keep").write_text("x")
    fs.remove_empty_parents(deep, tmp_path)
    assert not (tmp_path / "a" / "b").exists() and (tmp_path / "a" / "keep").exists()
    empty = tmp_path / "e" / "f"
    empty.mkdir(parents=True)
    fs.remove_empty_parents(empty, tmp_path)
    assert not (tmp_path / "e").exists() and tmp_path.is_dir()
    fs.remove_empty_parents(tmp_path.parent, tmp_path)  # outside the root: nothing happens
    assert tmp_path.is_dir()
