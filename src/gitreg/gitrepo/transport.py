"""Clone, fetch and push through GitPython: progress from its ``RemoteProgress`` parser and
its typed ``GitCommandError``, mapped to :class:`gitreg.errors.GitError` with git's own words
and a hint. The only module that imports GitPython (``git``), imported by
:mod:`gitreg.gitrepo` only when a transfer runs: reads (``gitreg list``) never pay for it.

Only :class:`~gitreg.gitrepo.parse.TransferProgress` records leave here, never a GitPython
object (see ``benchmarks/git_transport.py`` and the README's Dependencies for why GitPython
does this and plain ``git`` processes do the rest).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from git import GitCommandError, PushInfo, Remote, RemoteProgress, Repo
from git.exc import GitError as GitPythonError  # the base of every error GitPython raises

from gitreg.errors import GitError
from gitreg.gitrepo.parse import TransferProgress

ProgressCallback = Callable[[TransferProgress], None]

# GitPython logs git's error lines as warnings ("Error lines received while pushing: ...") and
# then raises or flags them; gitreg reports them once, in the GitError, and never prints here.
_gitpython_log = logging.getLogger("git.remote")
_gitpython_log.addHandler(logging.NullHandler())
_gitpython_log.propagate = False

_STAGES = {
    RemoteProgress.COUNTING: "counting objects",
    RemoteProgress.COMPRESSING: "compressing objects",
    RemoteProgress.WRITING: "writing objects",
    RemoteProgress.RECEIVING: "receiving objects",
    RemoteProgress.RESOLVING: "resolving deltas",
    RemoteProgress.FINDING_SOURCES: "finding sources",
    RemoteProgress.CHECKING_OUT: "checking out files",
}


class _Progress(RemoteProgress):
    """GitPython's stderr parser, forwarding each report as a TransferProgress; it also keeps
    the lines that were not progress (git's error:/fatal:/hint: lines) for the error."""

    def __init__(self, operation: str, callback: ProgressCallback | None) -> None:
        super().__init__()
        self.operation = operation
        self.callback = callback

    def update(self, op_code: int, cur_count: Any, max_count: Any = None, message: str = "") -> None:
        if self.callback is None:
            return
        stage = _STAGES.get(op_code & RemoteProgress.OP_MASK, "transferring")
        self.callback(
            TransferProgress(
                operation=self.operation,
                stage=stage,
                current=int(float(cur_count or 0)),
                total=int(float(max_count)) if max_count not in (None, "") else None,
                message=(message or "").strip(" ,"),
                done=bool(op_code & RemoteProgress.END),
            )
        )

    def said(self) -> str:
        """Git's non-progress stderr lines, errors first (what GitError shows)."""
        other = [
            ln for ln in self.other_lines if ln.strip() and not ln.startswith(("remote: ", "To ", "From "))
        ]
        return "\n".join([*self.error_lines, *other])


def _error(command: str, progress: _Progress, e: GitPythonError, hint: str) -> GitError:
    """GitPython's error as gitreg's: git's own lines when it printed any, else what
    GitPython says (a repository it cannot open, a refused protocol)."""
    if isinstance(e, GitCommandError):
        said = progress.said() or str(e.stderr or "").strip().removeprefix("stderr:").strip(" '\n")
        return GitError(command, said or f"git exited with status {e.status}", hint)
    return GitError(command, progress.said() or f"error: {type(e).__name__}: {e}", hint)


def clone_mirror(
    url: str, dest: Path, env: dict[str, str], progress: ProgressCallback | None, *, blob_filter: bool = False
) -> None:
    p = _Progress("clone", progress)
    extra = {"filter": "blob:none"} if blob_filter else {}
    try:
        Repo.clone_from(url, dest, mirror=True, progress=p, env=env, **extra)
    except GitPythonError as e:
        raise _error("clone", p, e, f"check that {url} is reachable and you may read it") from None


def fetch(
    root: Path,
    remote: str,
    refspecs: Sequence[str],
    env: dict[str, str],
    progress: ProgressCallback | None,
    *,
    prune: bool = False,
    force: bool = False,
) -> None:
    p = _Progress("fetch", progress)
    hint = f"check that {remote!r} is reachable and you may read it"
    try:
        repo = Repo(root)
    except GitPythonError as e:
        raise _error("fetch", p, e, hint) from None
    try:
        with repo.git.custom_environment(**env):
            Remote(repo, remote).fetch(list(refspecs) or None, progress=p, prune=prune, force=force)
    except GitPythonError as e:
        raise _error("fetch", p, e, hint) from None
    finally:
        repo.close()


def push(
    root: Path,
    remote: str,
    refspecs: Sequence[str],
    env: dict[str, str],
    progress: ProgressCallback | None,
    *,
    atomic: bool = False,
) -> None:
    """``git push`` of ``refspecs``; with ``atomic`` (``--atomic``) the remote takes all of them
    or none (a name claimed together with its branch)."""
    p = _Progress("push", progress)
    hint = f"check that {remote!r} is reachable and you may push; then re-run with --push"
    try:
        repo = Repo(root)
    except GitPythonError as e:
        raise _error("push", p, e, hint) from None
    try:
        with repo.git.custom_environment(**env):
            kwargs = {"atomic": True} if atomic else {}
            infos = Remote(repo, remote).push(list(refspecs), progress=p, **kwargs)
    except GitPythonError as e:
        raise _error("push", p, e, hint) from None
    finally:
        repo.close()
    refused = [i for i in infos if i.flags & (PushInfo.ERROR | PushInfo.REJECTED | PushInfo.REMOTE_REJECTED)]
    if refused or infos.error is not None:
        refs = "\n".join(f" ! {i.remote_ref_string}: {i.summary.strip()}" for i in refused)
        said = "\n".join(s for s in (p.said(), refs) if s)
        raise GitError("push", said or "the remote refused the push", hint)
