"""The content-addressed bundle cache of the deploy agent and ``gitreg.load``:
``<cache>/bundles/<key>/``, one folder per set of verified bytes whatever the version name, its
size accounting and least-recently-used eviction.

A bundle is pulled into a ``.pull-*`` temp folder beside the others and renamed into place only
once complete, so a folder under its key is always whole; a cached folder is re-verified (md5 of
every file) before it is trusted again, since the cache is only disk."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Protocol

log = logging.getLogger("gitreg.serve")

TEMP_PREFIX = ".pull-"


class BundleFile(Protocol):
    @property
    def path(self) -> str: ...
    @property
    def md5(self) -> str: ...


class BundleCache:
    def __init__(self, root: Path) -> None:
        self.root = root  # the bundles/ folder
        # beside it, never in it (what is in it is bundles, counted against --cache-max-bytes):
        self.lock_file = root.with_name(root.name + ".lock")  # processes sharing it pull once
        self.notes_dir = root.with_name(root.name + ".passed")  # smoke loads passed, by folder

    def folder_for(self, files: Iterable[BundleFile]) -> Path:
        """Content-addressed: the same bytes share one folder, whatever the version name."""
        key = hashlib.sha256("\n".join(sorted(f"{f.path}:{f.md5}" for f in files)).encode()).hexdigest()[:32]
        return self.root / key

    def holds(self, target: Path, files: Iterable[BundleFile]) -> bool:
        """True if ``target`` holds exactly these bytes; a folder that does not is removed."""
        from gitreg.store import md5_file

        if not target.exists():
            return False
        for f in files:
            path = target / f.path
            if not path.is_file() or md5_file(path)[0] != f.md5:
                shutil.rmtree(target, ignore_errors=True)
                return False
        return True

    def bundles(self) -> list[Path]:
        """The cached bundle folders, least recently used first."""
        if not self.root.is_dir():
            return []
        return sorted(
            (p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
        )

    def used_bytes(self) -> int:
        """Every byte under bundles/, temp folders of pulls in progress (or killed) included."""
        if not self.root.is_dir():
            return 0
        return folder_bytes(self.root)

    def evict_for(self, needed: int, limit: int, in_use: Collection[Path]) -> int:
        """Evict least recently used bundles not in ``in_use`` until ``needed`` more bytes fit
        under ``limit``; the bytes used afterwards (the caller refuses if it still does not fit)."""
        used = self.used_bytes()
        for folder in self.bundles():
            if used + needed <= limit:
                break
            if folder in in_use:
                continue
            used -= folder_bytes(folder)
            shutil.rmtree(folder, ignore_errors=True)
            log.info(
                "cache: evicted %s to make room for %d bytes", folder.name, needed, extra={"event": "evicted"}
            )
        return used

    def clean_stale(self) -> int:
        """Remove the temp folders of pulls that never finished (a killed agent leaves them);
        the bytes freed. At start-up only: one agent uses one cache folder."""
        if not self.root.is_dir():
            return 0
        freed = 0
        for tmp in self.root.glob(TEMP_PREFIX + "*"):
            if tmp.is_dir() and not tmp.is_symlink():
                freed += folder_bytes(tmp)
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        if freed:
            log.info("cache: removed %d bytes of unfinished pulls", freed, extra={"event": "cleaned"})
        return freed

    def fill(self, target: Path, pull: Callable[[Path], None]) -> None:
        """Pull a bundle into a temp folder beside ``target`` (``pull(dest)``), then rename it in."""
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.root, prefix=TEMP_PREFIX) as tmp:
            pull(Path(tmp) / "bundle")
            (Path(tmp) / "bundle").rename(target)

    def touch(self, target: Path) -> None:
        os.utime(target)  # least recently used goes first when the cache is full


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
