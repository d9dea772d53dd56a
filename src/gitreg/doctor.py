"""`gitreg doctor`: find (and with ``fix`` repair) what an interrupted command can leave behind.

Every mutating command is ordered so that a kill at any point leaves the old state, the new
state, or one of the states below, which ``run`` detects and ``fix`` repairs:

* an interrupted registration (``.git/gitreg/journal/<model>-<pid>.json`` left behind):
  - killed before its tag was made: it is undone. The model folder comes back from the stash
    (``.git/gitreg/stash``), ``models.yaml`` from HEAD; a ``register MODEL VERSION`` commit
    without its tag is reset (``git reset --soft HEAD~1``, then the paths are restored).
    Decision: such a version was never reported registered, so undoing is always safe, whereas
    tagging it would publish a version nobody saw succeed; bytes already uploaded stay on the
    DVC remote as unreferenced garbage (harmless; `dvc gc` removes them).
  - killed after its tag was made: it is finished (the stash and the journal are removed).
* an interrupted direct change of models.yaml (promote / rollback / cleanup, which commit
  first and then update the working tree; ``.git/gitreg/manifest-journal/<pid>.json`` left
  behind): HEAD already holds the old or the new models.yaml, so the working tree's copy and
  the index are brought in step with HEAD. If models.yaml was edited since, it is reported
  and left alone. An uncommitted models.yaml without a journal (a human edit) is reported as
  information.
* a ``register`` commit without its tag and without a journal (an older gitreg): reset when it
  is HEAD, else reported (tag or revert it by hand).
* stale lock notes: ``.git/gitreg.lock`` is an flock, so a dead holder never blocks anyone;
  the pid note it leaves is reported and cleared. Git's own ``*.lock`` files left by a killed
  git are removed (run `doctor --fix` only while no other git command runs in the repository).
* half-written temp files of ``models.yaml`` (``.models.yaml.*.tmp``) are removed: the file
  itself is always replaced atomically.
* tags that do not parse, commits without the bundle pointers their tag records, bytes missing
  from the DVC remote (``remote_check``), an invalid models.yaml, unreadable notes: reported.
* version tags not on the Git remote: reported; pushed with ``fix`` and ``push``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from gitreg import journal
from gitreg import manifest as mf
from gitreg.context import Context
from gitreg.errors import GitError, GitregError
from gitreg.metadata import parse_tag_message, parse_validation_note
from gitreg.versions import is_version

Severity = Literal["error", "warning", "info"]


class Finding(BaseModel):
    check: str  # e.g. "interrupted-register", "tag-not-pushed"
    severity: Severity
    message: str
    subject: str | None = None  # the version, model or file concerned
    fixable: bool = False
    fixed: bool = False
    hint: str | None = None


class DoctorReport(BaseModel):
    root: str
    ok: bool  # no error or warning remains
    fix: bool
    remote_check: bool
    versions: int = 0
    findings: list[Finding] = Field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.fixed and f.severity != "info"]


def run(ctx: Context, *, fix: bool = False, remote_check: bool = False, push: bool = False) -> DoctorReport:
    if ctx.bare:
        raise GitregError("gitreg doctor needs a working tree", "run it in a clone of the registry")
    if not fix:
        findings, count = _checks(ctx, remote_check)
        return _report(ctx, findings, count, fix, remote_check)
    # Taking the lock rewrites its note and releasing it clears it: a stale note is read first.
    stale = [f for f in _check_lock(ctx, False) if f.check == "stale-lock"]
    with ctx.lock():  # no registration runs while we repair (a dead one holds no lock)
        first, _ = _checks(ctx, remote_check, lock_held=True)
        fixed = stale + [f for f in first if f.fixable and _repair(ctx, f, push)]
        ctx.invalidate()
        findings, count = _checks(ctx, remote_check, lock_held=True)
    for f in fixed:
        f.fixed = True
    return _report(ctx, [*fixed, *findings], count, fix, remote_check)


def _report(ctx: Context, findings: list[Finding], count: int, fix: bool, remote_check: bool) -> DoctorReport:
    ok = not any(not f.fixed and f.severity != "info" for f in findings)
    return DoctorReport(
        root=str(ctx.root), ok=ok, fix=fix, remote_check=remote_check, versions=count, findings=findings
    )


# -- checks -------------------------------------------------------------------------------------
def _checks(ctx: Context, remote_check: bool, lock_held: bool = False) -> tuple[list[Finding], int]:
    out: list[Finding] = []
    out += _check_journal(ctx, lock_held)
    out += _check_manifest_journal(ctx, lock_held)
    out += _check_stash(ctx, lock_held)
    out += _check_lock(ctx, lock_held)
    out += _check_git_locks(ctx)
    out += _check_temp_files(ctx)
    out += _check_untagged_commits(ctx)
    out += _check_manifest(ctx)
    tag_findings, count = _check_tags(ctx, remote_check)
    out += tag_findings
    out += _check_notes(ctx)
    out += _check_remote_tags(ctx)
    return out, count


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


def _check_journal(ctx: Context, lock_held: bool) -> list[Finding]:
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


def _check_manifest_journal(ctx: Context, lock_held: bool) -> list[Finding]:
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


def _check_stash(ctx: Context, lock_held: bool) -> list[Finding]:
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


def _check_lock(ctx: Context, lock_held: bool) -> list[Finding]:
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


def _check_git_locks(ctx: Context) -> list[Finding]:
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


def _check_temp_files(ctx: Context) -> list[Finding]:
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


def _check_untagged_commits(ctx: Context) -> list[Finding]:
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


def _check_manifest(ctx: Context) -> list[Finding]:
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


def _check_tags(ctx: Context, remote_check: bool) -> tuple[list[Finding], int]:
    from gitreg.bundles import METADATA_FILE, POINTER_SUFFIX, DvcStore, parse_pointer

    out: list[Finding] = []
    try:
        manifest = ctx.manifest()
    except GitregError:
        manifest = None
    wanted: dict[str, tuple[str, str, str | None]] = {}  # object spec -> (version, file, md5)
    summaries = []
    for tag in ctx.git.version_tags():
        if not is_version(tag.name):
            continue
        if not tag.annotated:
            out.append(
                Finding(
                    check="tag",
                    severity="warning",
                    message=f"{tag.name} is a lightweight tag: gitreg ignores it",
                    subject=tag.name,
                    hint=f"delete it (git tag -d {tag.name}) or re-register the bundle",
                )
            )
            continue
        summary, _ = parse_tag_message(tag.message)
        if summary is None or summary.version != tag.name:
            out.append(
                Finding(
                    check="tag",
                    severity="warning",
                    message=f"{tag.name}: the tag message has no valid gitreg block: gitreg ignores it",
                    subject=tag.name,
                )
            )
            continue
        summaries.append((tag, summary))
        entry = manifest.model.models.get(summary.model) if manifest else None
        model_path = entry.path if entry else f"models/{summary.model}"
        for f in summary.files:
            suffix = "" if f.path == METADATA_FILE else POINTER_SUFFIX
            spec = f"{tag.commit}:{model_path}/{f.path}{suffix}"
            wanted[spec] = (tag.name, f.path, None if f.path == METADATA_FILE else f.md5)
    raw = ctx.git.read_objects(wanted)
    md5s: dict[str, list[tuple[str, str]]] = {}
    for spec, (version, path, md5) in wanted.items():
        data = raw.get(spec)
        if data is None:
            out.append(
                Finding(
                    check="pointer",
                    severity="error",
                    message=f"{version}: its commit lacks {spec.split(':', 1)[1]}",
                    subject=version,
                    hint="the tag points at the wrong commit; do not use this version",
                )
            )
            continue
        if md5 is None:
            continue
        try:
            ptr = parse_pointer(data, spec)
        except GitregError as e:
            out.append(Finding(check="pointer", severity="error", message=e.message, subject=version))
            continue
        if ptr.md5 != md5:
            out.append(
                Finding(
                    check="pointer",
                    severity="error",
                    message=f"{version}: {path} pointer md5 {ptr.md5} differs from the tag's {md5}",
                    subject=version,
                )
            )
            continue
        md5s.setdefault(md5, []).append((version, path))
    if remote_check and md5s:
        try:
            present = DvcStore(ctx.root).remote_objects(md5s)
        except GitregError as e:
            out.append(Finding(check="remote-bytes", severity="error", message=e.message, hint=e.hint))
            present = set(md5s)
        archived = {v for m in (manifest.model.models.values() if manifest else []) for v in m.archived}
        for md5 in sorted(set(md5s) - present):
            for version, path in md5s[md5]:
                gone_by_cleanup = version in archived
                out.append(
                    Finding(
                        check="remote-bytes",
                        severity="info" if gone_by_cleanup else "error",
                        message=f"{version}: {path} ({md5}) is not on the DVC remote"
                        + (" (archived: cleanup may have removed it)" if gone_by_cleanup else ""),
                        subject=version,
                        hint=None if gone_by_cleanup else "push it from a clone that has it: dvc push",
                    )
                )
    return out, len(summaries)


def _check_notes(ctx: Context) -> list[Finding]:
    out = []
    for obj, text in ctx.git.notes().items():
        if parse_validation_note(text) is None:
            out.append(
                Finding(
                    check="note",
                    severity="warning",
                    message=f"the validation note on {obj[:12]} cannot be read",
                    subject=obj,
                    hint="re-run `gitreg validate VERSION --record`",
                )
            )
    return out


def _check_remote_tags(ctx: Context) -> list[Finding]:
    remote = ctx.git.remote_name()
    if remote is None:
        return []
    local = sorted(t.name for t in ctx.git.version_tags() if is_version(t.name))
    if not local:
        return []
    have = ctx.git.remote_tags(remote)
    if have is None:
        return [
            Finding(
                check="remote",
                severity="info",
                message=f"Git remote {remote!r} cannot be reached: unpushed tags not checked",
            )
        ]
    return [
        Finding(
            check="tag-not-pushed",
            severity="warning",
            message=f"{name} is not on the Git remote {remote!r}",
            subject=name,
            fixable=True,
            hint=f"gitreg doctor --fix --push, or git push {remote} refs/tags/{name}",
        )
        for name in local
        if name not in have
    ]


# -- repairs ------------------------------------------------------------------------------------
def _repair(ctx: Context, f: Finding, push: bool) -> bool:
    """Apply the fix for one finding; True when it was repaired."""
    if f.check == "interrupted-register":
        return journal.repair_register(ctx, ctx.paths.journal / str(f.subject))
    if f.check == "interrupted-manifest-change":
        return journal.repair_manifest_change(ctx, ctx.paths.manifest_journal / str(f.subject))
    if f.check == "leftover-stash":
        return _repair_stash(ctx, ctx.paths.stash / str(f.subject))
    if f.check in ("git-lock-file", "temp-file"):
        Path(str(f.subject)).unlink(missing_ok=True)
        return True
    if f.check == "untagged-register-commit":
        return _reset_untagged(ctx, str(f.subject))
    if f.check == "tag-not-pushed":
        if not push:
            return False
        remote = ctx.git.remote_name()
        assert remote is not None
        try:
            ctx.git.push(remote, [f"refs/tags/{f.subject}"])
        except GitError:
            return False
        return True
    return False


def _reset_untagged(ctx: Context, version: str) -> bool:
    """Undo a ``register … VERSION`` commit that is HEAD and has no tag: the commit goes, the
    paths it changed come back as its parent has them."""
    head = ctx.git.rev_parse("HEAD")
    if head is None or ctx.git.tag(version) is not None:
        return False
    subject = ctx.git.commit_message(head).splitlines()[0] if head else ""
    if not subject.startswith("register ") or not subject.endswith(f" {version}"):
        return False
    paths = ctx.git.changed_files(head)
    ctx.git.reset_last_commit(head)
    tops = sorted({p if p == mf.MANIFEST_FILE else p.rsplit("/", 1)[0] for p in paths})
    ctx.git.restore(tops)
    return True


def _repair_stash(ctx: Context, stash: Path) -> bool:
    model = stash.name.rpartition("-")[0]
    try:
        entry = ctx.manifest().model.models.get(model)
    except GitregError:
        entry = None
    return journal.repair_stash(ctx, stash, entry.path if entry else f"models/{model}")
