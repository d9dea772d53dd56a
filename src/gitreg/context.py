"""The core context every operation takes: the Git repository, its root, the clock, whether it
is bare, the layout of ``.git/gitreg/`` (in one place), the cached manifest and the lock.

Operations (register, pull, lifecycle, doctor, …) receive a :class:`Context`, never the
:class:`~gitreg.registry.Registry` facade, so nothing below the facade imports it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from gitreg import manifest as mf
from gitreg.errors import GitError, NoGitRemote, NotARegistry, RegistryLocked
from gitreg.gitrepo import GitRepo

Clock = Callable[[], datetime]
LIST_CACHE_FILE = "list-cache"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StatePaths:
    """Where gitreg keeps its private state inside the Git directory."""

    git_dir: Path

    @property
    def state(self) -> Path:
        return self.git_dir / "gitreg"

    @property
    def lock(self) -> Path:
        return self.git_dir / "gitreg.lock"

    @property
    def journal(self) -> Path:
        """Registrations in progress (``<model>-<pid>.json``)."""
        return self.state / "journal"

    @property
    def manifest_journal(self) -> Path:
        """Direct models.yaml changes in progress (``<pid>.json``)."""
        return self.state / "manifest-journal"

    @property
    def stash(self) -> Path:
        """Model folders moved aside by a registration in progress."""
        return self.state / "stash"

    @property
    def list_cache(self) -> Path:
        return self.state / LIST_CACHE_FILE


class Context:
    """A gitreg registry's repository and what every operation needs of it."""

    def __init__(self, path: Path | str = ".", *, clock: Clock | None = None) -> None:
        self.git = GitRepo(path)
        self.root = self.git.root
        self.clock: Clock = clock or utcnow
        self._manifest: mf.Manifest | None = None
        # A bare repository (the deploy agent's mirror) has no working tree: root is the git dir.
        self.bare = not (self.root / ".git").exists()

    # -- paths -----------------------------------------------------------------------------------
    @cached_property
    def git_dir(self) -> Path:
        """The Git directory, without a git call in the usual cases (``.git`` a folder, or bare);
        a linked worktree or a submodule asks git (``.git`` is a file naming it)."""
        dot = self.root / ".git"
        if dot.is_dir():
            return dot
        if self.bare:
            return self.root
        return self.git.git_dir

    @property
    def paths(self) -> StatePaths:
        return StatePaths(self.git_dir)

    def list_cache_path(self) -> Path | None:
        """The list cache's file; None when ``GITREG_LIST_CACHE=0`` or the Git dir is unknown."""
        if os.environ.get("GITREG_LIST_CACHE", "1").lower() in ("0", "no", "off", "false"):
            return None
        try:
            return self.paths.list_cache
        except GitError:
            return None

    @property
    def manifest_path(self) -> Path:
        return self.root / mf.MANIFEST_FILE

    # -- the manifest ------------------------------------------------------------------------------
    def manifest(self) -> mf.Manifest:
        """models.yaml as last read (cached until :meth:`invalidate`)."""
        if self._manifest is None:
            self._manifest = mf.load(self.manifest_path)
        return self._manifest

    def invalidate(self) -> None:
        """Forget the cached manifest: the next :meth:`manifest` reads the file again."""
        self._manifest = None

    def load_policy(self) -> mf.LoadPolicy:
        """The ``policy:`` of models.yaml: the working tree's (HEAD's in a bare repository)."""
        if not self.bare:
            return mf.load(self.manifest_path).model.policy  # as it is now, not as cached
        raw = self.git.read_file("HEAD", mf.MANIFEST_FILE)
        return mf.loads(raw.decode(errors="replace")).model.policy if raw is not None else mf.LoadPolicy()

    # -- checks ------------------------------------------------------------------------------------
    def require_registry(self) -> None:
        if not (self.root / ".dvc").is_dir() or not self.manifest_path.exists():
            raise NotARegistry(str(self.root))

    def require_readable(self) -> None:
        """A bare mirror, or a working tree with models.yaml or .dvc: versions can be listed."""
        if not self.bare and not self.manifest_path.exists() and not (self.root / ".dvc").is_dir():
            raise NotARegistry(str(self.root))

    def remote(self, flag: str = "--push") -> str:
        """The Git remote to push to; :class:`NoGitRemote` when there is none."""
        remote = self.git.remote_name()
        if remote is None:
            raise NoGitRemote(flag)
        return remote

    # -- the lock ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        """Serialize mutating commands in one repository (a flock: released if we die)."""
        if timeout is None:
            timeout = float(os.environ.get("GITREG_LOCK_TIMEOUT", "600"))
        path = self.paths.lock
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        held = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                        raise RegistryLocked(str(path), holder) from None
                    time.sleep(0.05)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} since {utcnow().isoformat(timespec='seconds')}".encode(), 0)
            held = True
            yield
        finally:
            if held:  # a note left behind means its holder died (gitreg doctor reports it)
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the flock
