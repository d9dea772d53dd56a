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
from gitreg.errors import (
    GitError,
    ManifestError,
    NoGitRemote,
    NotARegistry,
    RegistryLocked,
    ShallowClone,
    UnknownRevision,
)
from gitreg.gitrepo import GitRepo, notes

Clock = Callable[[], datetime]
LIST_CACHE_FILE = "list-cache"


def utcnow() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def exclusive_lock(path: Path, timeout: float | None = None) -> Iterator[None]:
    """An exclusive flock on ``path`` (released if we die), waiting up to ``timeout`` seconds
    (default ``GITREG_LOCK_TIMEOUT``, 600) and then raising :class:`RegistryLocked` naming the
    holder; the holder's pid is noted in the file while it is held. The registry's lock and the
    ``--repo`` mirror cache's."""
    if timeout is None:
        timeout = float(os.environ.get("GITREG_LOCK_TIMEOUT", "600"))
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

    def __init__(
        self, path: Path | str = ".", *, clock: Clock | None = None, branch: str | None = None
    ) -> None:
        self.git = GitRepo(path)
        self._branch = branch  # a bare repository's branch to read models.yaml from (None: HEAD's)
        self.root = self.git.root
        self.clock: Clock = clock or utcnow
        self._manifest: mf.Manifest | None = None
        # A bare repository (the deploy agent's mirror) has no working tree: root is the git dir.
        self.bare = not (self.root / ".git").exists()
        self._notes_checked = False

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

    # -- validation notes --------------------------------------------------------------------------
    def sync_notes(self, refs: dict[str, str] | None = None) -> None:
        """Before validation records are read: take in the notes the remote sent (a plain
        ``git clone`` brings none; the first call configures the remote to, and fetches them
        once). ``refs``: the notes refs, when the caller read them already. Once per context;
        a bare mirror fetches ``refs/*`` itself."""
        if self._notes_checked or self.bare:
            return
        self._notes_checked = True
        notes.notes_in_step(self.git, refs)

    def fetch_notes(self) -> bool:
        """Fetch the remote's validation notes now (a version needed validated is not, here);
        True when new ones came in."""
        remote = None if self.bare else self.git.remote_name()
        return remote is not None and notes.fetch_notes(self.git, remote)

    # -- the manifest ------------------------------------------------------------------------------
    def manifest(self) -> mf.Manifest:
        """models.yaml as last read (cached until :meth:`invalidate`)."""
        if self._manifest is None:
            self._manifest = self.read_manifest()
        return self._manifest

    def invalidate(self) -> None:
        """Forget the cached manifest: the next :meth:`manifest` reads the file again."""
        self._manifest = None

    def read_manifest(self, *, required: bool = False) -> mf.Manifest:
        """models.yaml as it is now, not as cached: the working tree's file, or in a bare
        repository (a mirror, a server-side hook) the branch's blob read through git, never a
        working tree. Missing, it reads as an empty manifest unless ``required``."""
        if not self.bare:
            if required and not self.manifest_path.exists():
                raise ManifestError(mf.MANIFEST_FILE, "does not exist", "run `gitreg init` first")
            return mf.load(self.manifest_path)
        rev = self.branch
        raw = self.git.read_file(rev, mf.MANIFEST_FILE) if rev else None
        if raw is None:
            if required:
                where = f"on {rev}" if rev else "(the repository has no branch)"
                raise ManifestError(mf.MANIFEST_FILE, f"does not exist {where}", "run `gitreg init` first")
            return mf.loads(mf.new_manifest_text())
        return mf.loads_bytes(raw)

    @cached_property
    def branch(self) -> str | None:
        """The branch a bare repository's models.yaml is read from: HEAD's branch, or when HEAD
        names no branch that exists, the default branch (main, then master); the one asked
        for (``--branch``) when given."""
        if self._branch is not None:
            rev = f"refs/heads/{self._branch}"
            if self.git.rev_parse(rev) is None:
                raise UnknownRevision(self._branch, "--branch")
            return rev
        for rev in ("HEAD", "refs/heads/main", "refs/heads/master"):
            if self.git.rev_parse(rev) is not None:
                return rev
        return None

    def load_policy(self) -> mf.LoadPolicy:
        """The ``policy:`` of models.yaml: the working tree's (the branch's in a bare repository)."""
        return self.read_manifest().model.policy

    def require_full_history(self, command: str) -> None:
        """Refuse to answer from a shallow clone's partial history (one git call)."""
        if self.git.is_shallow():
            raise ShallowClone(str(self.root), command)

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
        with exclusive_lock(self.paths.lock, timeout):
            yield
