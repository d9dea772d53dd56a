"""Journals: what a mutating command writes before it starts, so that a kill at any point can be
finished or undone by `gitreg doctor --fix`; the crash-test checkpoints that prove it.

* register journals (``.git/gitreg/journal/<model>-<pid>.json``) name a registration in
  progress and where it stashed the model folder it replaces;
* manifest journals (``.git/gitreg/manifest-journal/<pid>.json``) name a direct models.yaml
  change: the commit comes first (private index, compare-and-swap of the branch), then the
  working tree follows.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from gitreg import manifest as mf
from gitreg.context import Context, utcnow
from gitreg.errors import writing
from gitreg.fs import atomic_write, remove_empty_parents

_T = TypeVar("_T")

#: Where `register` is killed in tests (``GITREG_TEST_CRASH_AT``), in the order it passes them.
CRASH_POINTS = ("locked", "stashed", "copied", "tracked", "uploaded", "committed", "tagged", "done")
#: Where a direct models.yaml change is killed in tests.
MANIFEST_CRASH_POINTS = ("manifest-journaled", "manifest-committed", "manifest-written")


def checkpoint(point: str) -> None:
    """Crash-test hook: ``GITREG_TEST_CRASH_AT=<point>`` SIGKILLs this process at ``point``,
    so tests can check that `gitreg doctor` repairs every state."""
    if os.environ.get("GITREG_TEST_CRASH_AT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


def _entry(**fields: object) -> bytes:
    return json.dumps(
        {**fields, "pid": os.getpid(), "started": utcnow().isoformat(timespec="seconds")}
    ).encode()


def read_journals(folder: Path) -> list[tuple[Path, dict[str, object]]]:
    """Each journal in ``folder`` with its entry (``{}`` for one that cannot be read)."""
    if not folder.is_dir():
        return []
    entries = []
    for path in sorted(folder.glob("*.json")):
        try:
            entries.append((path, dict(json.loads(path.read_text()))))
        except (OSError, ValueError):
            entries.append((path, {}))
    return entries


# -- register journals -------------------------------------------------------------------------------
def stash_path(ctx: Context, model: str) -> Path:
    return ctx.paths.stash / f"{model}-{os.getpid()}"


def write_register_journal(
    ctx: Context, model: str, model_path: str, version: str, stash: Path, moved: bool
) -> Path:
    """Record a registration in progress (atomically), for `gitreg doctor` to finish or undo."""
    path = ctx.paths.journal / f"{model}-{os.getpid()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(
        path, _entry(model=model, model_path=model_path, version=version, stash=str(stash), moved=moved)
    )
    return path


def register_journals(ctx: Context) -> list[tuple[Path, dict[str, object]]]:
    return read_journals(ctx.paths.journal)


def kept_manifest_path(journal: Path) -> Path:
    """Where the registration ``journal`` names keeps the original models.yaml (a hard link)."""
    return journal.with_suffix(".models.yaml")


def keep_manifest(ctx: Context, journal: Path) -> Path | None:
    """Keep the original models.yaml as a hard link beside the stash (no bytes are copied), so
    that an undo renames it back instead of writing it again: undoing needs no free space."""
    if not ctx.manifest_path.exists():
        return None
    kept = kept_manifest_path(journal)
    kept.unlink(missing_ok=True)
    os.link(ctx.manifest_path, kept)
    return kept


def restore_model_folder(
    ctx: Context, model_dir: Path, stash: Path | None, manifest_kept: Path | None, paths: list[str]
) -> None:
    """Put the working tree back as it was before a failed registration, by removing and renaming
    only (it needs no free space: the disk may be what failed): the model folder's stash and the
    kept models.yaml are renamed back; the index is reset only when something was staged."""
    if ctx.git.staged_paths(paths):
        ctx.git.unstage(paths)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    if stash is not None and stash.exists():
        model_dir.parent.mkdir(parents=True, exist_ok=True)
        os.rename(stash, model_dir)
    if manifest_kept is not None and manifest_kept.exists():
        os.replace(manifest_kept, ctx.manifest_path)
    remove_empty_parents(model_dir.parent, ctx.root)
    ctx.invalidate()


def repair_register(ctx: Context, journal: Path) -> bool:
    """Finish (its tag exists) or undo (it does not) the registration ``journal`` names."""
    try:
        entry = dict(json.loads(journal.read_text()))
    except (OSError, ValueError):
        journal.unlink(missing_ok=True)  # torn before it was complete: nothing had started
        return True
    version = str(entry["version"])
    model_path = str(entry["model_path"])
    stash = Path(str(entry["stash"]))
    model_dir = ctx.root / model_path
    if ctx.git.tag(version) is not None:
        # The registration completed its tag: finish it.
        shutil.rmtree(stash, ignore_errors=True)
        kept_manifest_path(journal).unlink(missing_ok=True)
        journal.unlink(missing_ok=True)
        return True
    head = ctx.git.rev_parse("HEAD")
    if head is not None:
        subject = ctx.git.commit_message(head).splitlines()[0]
        if subject == f"register {entry['model']} {version}":
            ctx.git.reset_last_commit(head)
    paths = [model_path, mf.MANIFEST_FILE]
    ctx.git.unstage(paths)
    manifest_head = ctx.git.read_file("HEAD", mf.MANIFEST_FILE)
    if entry.get("moved"):
        if stash.exists():  # the folder was moved aside: put it back
            if model_dir.exists():
                shutil.rmtree(model_dir)
            model_dir.parent.mkdir(parents=True, exist_ok=True)
            os.rename(stash, model_dir)
        # else: killed before the move, the folder is still the old one
    else:
        ctx.git.restore([model_path])  # the model folder did not exist before
        if model_dir.exists():
            shutil.rmtree(model_dir)
    kept = kept_manifest_path(journal)
    if kept.exists():  # the original models.yaml, kept as a hard link: renamed back, not rewritten
        os.replace(kept, ctx.manifest_path)
    elif manifest_head is not None:
        atomic_write(ctx.manifest_path, manifest_head)
    remove_empty_parents(model_dir.parent, ctx.root)
    journal.unlink(missing_ok=True)
    return True


def repair_stash(ctx: Context, stash: Path, model_path: str) -> bool:
    """A stash no journal claims: put it back when the model folder has uncommitted changes
    (a registration died after moving it), else drop it."""
    model_dir = ctx.root / model_path
    if ctx.git.changed_paths([model_path]):
        if model_dir.exists():
            shutil.rmtree(model_dir)
        model_dir.parent.mkdir(parents=True, exist_ok=True)
        os.rename(stash, model_dir)
        ctx.git.unstage([model_path])
    else:
        shutil.rmtree(stash, ignore_errors=True)
    return True


# -- manifest journals and crash-safe models.yaml commits ----------------------------------------------
def manifest_journals(ctx: Context) -> list[tuple[Path, dict[str, object]]]:
    return read_journals(ctx.paths.manifest_journal)


def _write_manifest_journal(ctx: Context, branch: str, old: bytes, new: bytes, what: str) -> Path:
    path = ctx.paths.manifest_journal / f"{os.getpid()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(
        path, _entry(what=what, branch=branch, old_blob=ctx.git.blob_id(old), new_blob=ctx.git.blob_id(new))
    )
    return path


def sync_manifest(ctx: Context, text: bytes) -> None:
    """Bring the working tree's models.yaml (atomically) and the index to ``text``."""
    with writing(mf.MANIFEST_FILE):
        atomic_write(ctx.manifest_path, text)
    ctx.git.stage([mf.MANIFEST_FILE])


def _move_manifest(
    ctx: Context, branch: str, old: bytes, new: bytes, what: str, move: Callable[[], _T]
) -> _T:
    """Run ``move`` (which moves ``branch``) under a journal, then sync the working tree to
    ``new``. A failure before the branch moved leaves nothing behind; a kill after it leaves
    the journal, for `gitreg doctor --fix` to bring models.yaml in step with HEAD."""
    journal = _write_manifest_journal(ctx, branch, old, new, what)
    try:
        checkpoint("manifest-journaled")
        out = move()
    except BaseException:
        journal.unlink(missing_ok=True)
        raise
    checkpoint("manifest-committed")
    sync_manifest(ctx, new)
    checkpoint("manifest-written")
    journal.unlink(missing_ok=True)
    return out


def commit_manifest(ctx: Context, branch: str, base: str, new_text: bytes, message: str) -> str:
    """Commit ``new_text`` as models.yaml on ``branch``, which must still be at ``base``
    (compare-and-swap: a concurrent change is never overwritten), then bring the index and the
    working tree along. The commit comes first, with a private index, so a kill at any point
    leaves the old commit or the new one, never a half-written or uncommitted models.yaml that
    nothing accounts for."""
    old = ctx.git.read_file(base, mf.MANIFEST_FILE) or b""

    def commit() -> str:
        return ctx.git.commit_file(base, mf.MANIFEST_FILE, new_text, message, branch=branch, create=False)

    return _move_manifest(ctx, branch, old, new_text, message.splitlines()[0], commit)


def uncommit_manifest(ctx: Context, branch: str, commit: str, base: str) -> None:
    """Take back :func:`commit_manifest`'s ``commit`` (``branch`` goes back to ``base``)."""
    old = ctx.git.read_file(commit, mf.MANIFEST_FILE) or b""
    new = ctx.git.read_file(base, mf.MANIFEST_FILE) or b""

    def move_back() -> None:
        ctx.git.move_branch(branch, base, commit)

    _move_manifest(ctx, branch, old, new, f"undo {commit[:12]}", move_back)


def repair_manifest_change(ctx: Context, journal: Path) -> bool:
    """Bring models.yaml (working tree and index) in step with HEAD, then drop the journal."""
    head = ctx.git.read_file("HEAD", mf.MANIFEST_FILE)
    if head is not None:
        sync_manifest(ctx, head)
    journal.unlink(missing_ok=True)
    return True
