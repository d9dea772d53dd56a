"""The doctor's checks of local state: journals, stashes, locks, temp files, untagged register
commits and models.yaml."""

from __future__ import annotations

import os
import time
from pathlib import Path

from gitreg import journal
from gitreg import manifest as mf
from gitreg.context import Context
from gitreg.doctor.findings import Finding
from gitreg.errors import GitregError
from gitreg.versions import is_version


def _journals(ctx: Context) -> list[tuple[Path, dict[str, object]]]:
    return journal.register_journals(ctx)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_journal(ctx: Context, lock_held: bool) -> list[Finding]:
    out = []
    for path, entry in _journals(ctx):
        pid = entry.get("pid")
        if not lock_held and isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid):
            out.append(
                Finding(
                    check="register-running",
                    severity="info",
                    message=f"a registration of {entry.get('model')} {entry.get('version')} "
                    f"is running (pid {pid})",
                    subject=str(entry.get("version")),
                )
            )
            continue
        version = str(entry.get("version", "?"))
        tagged = bool(entry) and ctx.git.tag(version) is not None
        what = (
            "its tag was made: --fix finishes it (removes the stash)"
            if tagged
            else "it never got its tag: --fix undoes it (model folder and models.yaml back to HEAD)"
        )
        out.append(
            Finding(
                check="interrupted-register",
                severity="warning",
                message=f"registration of {entry.get('model')} {version} was interrupted (pid {pid}); {what}",
                subject=path.name,
                fixable=True,
                hint="gitreg doctor --fix",
            )
        )
    return out


def _manifest_journals(ctx: Context) -> list[tuple[Path, dict[str, object]]]:
    return journal.manifest_journals(ctx)


def _manifest_blobs(ctx: Context) -> tuple[str | None, str | None, str | None]:
    """models.yaml's blob ids in HEAD, the index and the working tree (None: absent)."""
    head = ctx.git.read_file("HEAD", mf.MANIFEST_FILE)
    try:
        work: str | None = ctx.git.blob_id(ctx.manifest_path.read_bytes())
    except OSError:
        work = None
    return (ctx.git.blob_id(head) if head is not None else None), ctx.git.index_blob(mf.MANIFEST_FILE), work


def check_manifest_journal(ctx: Context, lock_held: bool) -> list[Finding]:
    out = []
    journals = _manifest_journals(ctx)
    for path, entry in journals:
        pid = entry.get("pid")
        what = entry.get("what", "a change")
        if not lock_held and isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid):
            out.append(
                Finding(
                    check="manifest-change-running",
                    severity="info",
                    message=f"a models.yaml change ({what}) is running (pid {pid})",
                    subject=path.name,
                )
            )
            continue
        head, index, work = _manifest_blobs(ctx)
        known = {entry.get("old_blob"), entry.get("new_blob"), head}
        side = (
            "the new"
            if head == entry.get("new_blob")
            else "the old"
            if head == entry.get("old_blob")
            else "a"
        )
        if index in known and work in known:
            state = "in step with it" if index == work == head else "not in step with it"
            out.append(
                Finding(
                    check="interrupted-manifest-change",
                    severity="warning",
                    message=f"a models.yaml change ({what}) was interrupted (pid {pid}): HEAD holds {side} "
                    f"models.yaml, the working tree is {state}; --fix brings it in step with HEAD",
                    subject=path.name,
                    fixable=True,
                    hint="gitreg doctor --fix",
                )
            )
        else:
            out.append(
                Finding(
                    check="interrupted-manifest-change",
                    severity="error",
                    message=f"a models.yaml change ({what}) was interrupted (pid {pid}) and models.yaml "
                    "was edited since",
                    subject=path.name,
                    hint=f"keep or drop your edit (git diff {mf.MANIFEST_FILE}), then delete {path}",
                )
            )
    if not journals:
        head, index, work = _manifest_blobs(ctx)
        if head is not None and (index != head or work != head):
            out.append(
                Finding(
                    check="manifest-uncommitted",
                    severity="info",
                    message=f"{mf.MANIFEST_FILE} has uncommitted changes",
                    subject=mf.MANIFEST_FILE,
                    hint=f"commit them, or drop them: git checkout HEAD -- {mf.MANIFEST_FILE}",
                )
            )
    return out


def check_stash(ctx: Context, lock_held: bool) -> list[Finding]:
    folder = ctx.paths.stash
    if not folder.is_dir():
        return []
    claimed = {str(e.get("stash")) for _, e in _journals(ctx)}
    out = []
    for stash in sorted(folder.iterdir()):
        if str(stash) in claimed:
            continue  # handled with its journal
        model, _, pid = stash.name.rpartition("-")
        if not lock_held and pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
            continue
        out.append(
            Finding(
                check="leftover-stash",
                severity="warning",
                message=f"a model folder stashed by an interrupted registration of {model!r} is left "
                f"in {stash}",
                subject=stash.name,
                fixable=True,
                hint="--fix puts it back when models/ is not at a newer commit, else removes it",
            )
        )
    return out


def check_lock(ctx: Context, lock_held: bool) -> list[Finding]:
    path = ctx.paths.lock
    if lock_held or not path.exists():
        return []
    try:
        note = path.read_text(errors="replace").strip()
    except OSError:
        return []
    if not note.startswith("pid "):
        return []
    pid = note.split()[1]
    if pid.isdigit() and _pid_alive(int(pid)) and int(pid) != os.getpid():
        return [
            Finding(
                check="lock-held",
                severity="info",
                message=f"the registry lock is held: {note}",
                subject=str(path),
            )
        ]
    return [
        Finding(
            check="stale-lock",
            severity="warning",
            message=f"stale lock note from a dead process: {note} (it blocks nobody: the lock is an "
            "flock, released when its holder dies)",
            subject=str(path),
            fixable=True,
            hint="--fix clears the note",
        )
    ]


def _git_lock_files(ctx: Context) -> list[Path]:
    gd = ctx.git.git_dir
    found = [p for p in (gd / "index.lock", gd / "HEAD.lock", gd / "packed-refs.lock") if p.exists()]
    refs = gd / "refs"
    if refs.is_dir():
        found += sorted(refs.rglob("*.lock"))
    return found


def check_git_locks(ctx: Context) -> list[Finding]:
    return [
        Finding(
            check="git-lock-file",
            severity="warning",
            message=f"git lock file {p.relative_to(ctx.git.git_dir.parent)} left by a killed git "
            "(or a git command running now)",
            subject=str(p),
            fixable=True,
            hint="--fix removes it (only run it while no other git command runs here)",
        )
        for p in _git_lock_files(ctx)
    ]


def check_temp_files(ctx: Context) -> list[Finding]:
    return (
        [
            Finding(
                check="temp-file",
                severity="warning",
                message=f"{p.name}: a half-written copy of {mf.MANIFEST_FILE} (the file itself is intact)",
                subject=str(p),
                fixable=True,
            )
            for p in sorted(ctx.root.glob(f".{mf.MANIFEST_FILE}.*.tmp"))
        ]
        + [
            Finding(
                check="temp-file",
                severity="info",
                message=f"{p.name}: a half-written copy of the list cache (it is rebuilt as needed)",
                subject=str(p),
                fixable=True,
            )
            for p in sorted(ctx.paths.state.glob(".list-cache-*.tmp"))
            if _older_than(p, 60.0)  # a younger one may be a listing writing it now
        ]
        + [
            Finding(
                check="temp-file",
                severity="info",
                message=f"{p.name}: a half-written journal of a command killed before it started work",
                subject=str(p),
                fixable=True,
            )
            for folder in (ctx.paths.journal, ctx.paths.manifest_journal)
            for p in sorted(folder.glob(".*.tmp"))
        ]
    )


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


def _untagged(ctx: Context) -> list[tuple[str, str, str]]:
    """(sha, model, version) of ``register`` commits on HEAD whose version has no tag."""
    if not ctx.git.has_commits():
        return []
    tags = {t.name: t.commit for t in ctx.git.version_tags()}
    out = []
    for sha, subject in ctx.git.commits_with_subject("register "):
        parts = subject.split()
        if len(parts) == 3 and is_version(parts[2]) and parts[2] not in tags:
            out.append((sha, parts[1], parts[2]))
    return out


def check_untagged_commits(ctx: Context) -> list[Finding]:
    journal_versions = {str(e.get("version")) for _, e in _journals(ctx)}
    head = ctx.git.rev_parse("HEAD")
    out = []
    for sha, model, version in _untagged(ctx):
        if version in journal_versions:
            continue  # repaired with its journal
        is_head = sha == head
        out.append(
            Finding(
                check="untagged-register-commit",
                severity="warning",
                message=f"commit {sha[:12]} registers {model} {version} but the tag was never made",
                subject=version,
                fixable=is_head,
                hint="--fix resets it (it is HEAD)"
                if is_head
                else f"tag it by re-registering, or `git revert {sha[:12]}`",
            )
        )
    return out


def check_manifest(ctx: Context) -> list[Finding]:
    try:
        mf.load(ctx.manifest_path)
    except GitregError as e:
        return [Finding(check="manifest", severity="error", message=e.message, hint=e.hint)]
    try:
        from gitreg.lifecycle import check

        report = check(ctx)
    except GitregError as e:
        return [Finding(check="manifest", severity="error", message=e.message, hint=e.hint)]
    return [
        Finding(check="manifest", severity="error", message=p.message, subject=p.model)
        for p in report.problems
    ]
