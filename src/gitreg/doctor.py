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

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from gitreg import manifest as mf
from gitreg.errors import GitError, GitregError
from gitreg.metadata import parse_tag_message, parse_validation_note
from gitreg.versions import is_version

if TYPE_CHECKING:
    from gitreg.registry import Registry

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


def run(reg: Registry, *, fix: bool = False, remote_check: bool = False, push: bool = False) -> DoctorReport:
    if reg.bare:
        raise GitregError("gitreg doctor needs a working tree", "run it in a clone of the registry")
    if not fix:
        findings, count = _checks(reg, remote_check)
        return _report(reg, findings, count, fix, remote_check)
    # Taking the lock rewrites its note and releasing it clears it: a stale note is read first.
    stale = [f for f in _check_lock(reg, False) if f.check == "stale-lock"]
    with reg.lock():  # no registration runs while we repair (a dead one holds no lock)
        first, _ = _checks(reg, remote_check, lock_held=True)
        fixed = stale + [f for f in first if f.fixable and _repair(reg, f, push)]
        reg._manifest = None
        findings, count = _checks(reg, remote_check, lock_held=True)
    for f in fixed:
        f.fixed = True
    return _report(reg, [*fixed, *findings], count, fix, remote_check)


def _report(
    reg: Registry, findings: list[Finding], count: int, fix: bool, remote_check: bool
) -> DoctorReport:
    ok = not any(not f.fixed and f.severity != "info" for f in findings)
    return DoctorReport(
        root=str(reg.root), ok=ok, fix=fix, remote_check=remote_check, versions=count, findings=findings
    )


# -- checks -------------------------------------------------------------------------------------
def _checks(reg: Registry, remote_check: bool, lock_held: bool = False) -> tuple[list[Finding], int]:
    out: list[Finding] = []
    out += _check_journal(reg, lock_held)
    out += _check_manifest_journal(reg, lock_held)
    out += _check_stash(reg, lock_held)
    out += _check_lock(reg, lock_held)
    out += _check_git_locks(reg)
    out += _check_temp_files(reg)
    out += _check_untagged_commits(reg)
    out += _check_manifest(reg)
    tag_findings, count = _check_tags(reg, remote_check)
    out += tag_findings
    out += _check_notes(reg)
    out += _check_remote_tags(reg)
    return out, count


def _journals(reg: Registry) -> list[tuple[Path, dict[str, object]]]:
    return _read_journals(reg._journal_dir())


def _read_journals(folder: Path) -> list[tuple[Path, dict[str, object]]]:
    if not folder.is_dir():
        return []
    entries = []
    for path in sorted(folder.glob("*.json")):
        try:
            entries.append((path, dict(json.loads(path.read_text()))))
        except (OSError, ValueError):
            entries.append((path, {}))
    return entries


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_journal(reg: Registry, lock_held: bool) -> list[Finding]:
    out = []
    for path, entry in _journals(reg):
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
        tagged = bool(entry) and reg.git.tag(version) is not None
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


def _manifest_journals(reg: Registry) -> list[tuple[Path, dict[str, object]]]:
    from gitreg.lifecycle import manifest_journal_dir

    return _read_journals(manifest_journal_dir(reg))


def _manifest_blobs(reg: Registry) -> tuple[str | None, str | None, str | None]:
    """models.yaml's blob ids in HEAD, the index and the working tree (None: absent)."""
    head = reg.git.read_file("HEAD", mf.MANIFEST_FILE)
    try:
        work: str | None = reg.git.blob_id(reg.manifest_path.read_bytes())
    except OSError:
        work = None
    return (reg.git.blob_id(head) if head is not None else None), reg.git.index_blob(mf.MANIFEST_FILE), work


def _check_manifest_journal(reg: Registry, lock_held: bool) -> list[Finding]:
    out = []
    journals = _manifest_journals(reg)
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
        head, index, work = _manifest_blobs(reg)
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
        head, index, work = _manifest_blobs(reg)
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


def _check_stash(reg: Registry, lock_held: bool) -> list[Finding]:
    folder = reg._stash_dir()
    if not folder.is_dir():
        return []
    claimed = {str(e.get("stash")) for _, e in _journals(reg)}
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


def _check_lock(reg: Registry, lock_held: bool) -> list[Finding]:
    path = reg.git.git_dir / "gitreg.lock"
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


def _git_lock_files(reg: Registry) -> list[Path]:
    gd = reg.git.git_dir
    found = [p for p in (gd / "index.lock", gd / "HEAD.lock", gd / "packed-refs.lock") if p.exists()]
    refs = gd / "refs"
    if refs.is_dir():
        found += sorted(refs.rglob("*.lock"))
    return found


def _check_git_locks(reg: Registry) -> list[Finding]:
    return [
        Finding(
            check="git-lock-file",
            severity="warning",
            message=f"git lock file {p.relative_to(reg.git.git_dir.parent)} left by a killed git "
            "(or a git command running now)",
            subject=str(p),
            fixable=True,
            hint="--fix removes it (only run it while no other git command runs here)",
        )
        for p in _git_lock_files(reg)
    ]


def _check_temp_files(reg: Registry) -> list[Finding]:
    return (
        [
            Finding(
                check="temp-file",
                severity="warning",
                message=f"{p.name}: a half-written copy of {mf.MANIFEST_FILE} (the file itself is intact)",
                subject=str(p),
                fixable=True,
            )
            for p in sorted(reg.root.glob(f".{mf.MANIFEST_FILE}.*.tmp"))
        ]
        + [
            Finding(
                check="temp-file",
                severity="info",
                message=f"{p.name}: a half-written copy of the list cache (it is rebuilt as needed)",
                subject=str(p),
                fixable=True,
            )
            for p in sorted((reg.git.git_dir / "gitreg").glob(".list-cache-*.tmp"))
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
            for folder in ("journal", "manifest-journal")
            for p in sorted((reg.git.git_dir / "gitreg" / folder).glob(".*.tmp"))
        ]
    )


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


def _untagged(reg: Registry) -> list[tuple[str, str, str]]:
    """(sha, model, version) of ``register`` commits on HEAD whose version has no tag."""
    if not reg.git.has_commits():
        return []
    tags = {t.name: t.commit for t in reg.git.version_tags()}
    out = []
    for sha, subject in reg.git.commits_with_subject("register "):
        parts = subject.split()
        if len(parts) == 3 and is_version(parts[2]) and parts[2] not in tags:
            out.append((sha, parts[1], parts[2]))
    return out


def _check_untagged_commits(reg: Registry) -> list[Finding]:
    journal_versions = {str(e.get("version")) for _, e in _journals(reg)}
    head = reg.git.rev_parse("HEAD")
    out = []
    for sha, model, version in _untagged(reg):
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


def _check_manifest(reg: Registry) -> list[Finding]:
    try:
        mf.load(reg.manifest_path)
    except GitregError as e:
        return [Finding(check="manifest", severity="error", message=e.message, hint=e.hint)]
    try:
        report = reg.check()
    except GitregError as e:
        return [Finding(check="manifest", severity="error", message=e.message, hint=e.hint)]
    return [
        Finding(check="manifest", severity="error", message=p.message, subject=p.model)
        for p in report.problems
    ]


def _check_tags(reg: Registry, remote_check: bool) -> tuple[list[Finding], int]:
    from gitreg.bundles import METADATA_FILE, POINTER_SUFFIX, DvcStore, parse_pointer

    out: list[Finding] = []
    try:
        manifest = reg.manifest()
    except GitregError:
        manifest = None
    wanted: dict[str, tuple[str, str, str | None]] = {}  # object spec -> (version, file, md5)
    summaries = []
    for tag in reg.git.version_tags():
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
    raw = reg.git.read_objects(wanted)
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
            present = DvcStore(reg.root).remote_objects(md5s)
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


def _check_notes(reg: Registry) -> list[Finding]:
    out = []
    for obj, text in reg.git.notes().items():
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


def _check_remote_tags(reg: Registry) -> list[Finding]:
    remote = reg.git.remote_name()
    if remote is None:
        return []
    local = sorted(t.name for t in reg.git.version_tags() if is_version(t.name))
    if not local:
        return []
    have = reg.git.remote_tags(remote)
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
def _repair(reg: Registry, f: Finding, push: bool) -> bool:
    """Apply the fix for one finding; True when it was repaired."""
    if f.check == "interrupted-register":
        return _repair_register(reg, reg._journal_dir() / str(f.subject))
    if f.check == "interrupted-manifest-change":
        return _repair_manifest_change(reg, reg.git.git_dir / "gitreg" / "manifest-journal" / str(f.subject))
    if f.check == "leftover-stash":
        return _repair_stash(reg, reg._stash_dir() / str(f.subject))
    if f.check in ("git-lock-file", "temp-file"):
        Path(str(f.subject)).unlink(missing_ok=True)
        return True
    if f.check == "untagged-register-commit":
        return _reset_untagged(reg, str(f.subject))
    if f.check == "tag-not-pushed":
        if not push:
            return False
        remote = reg.git.remote_name()
        assert remote is not None
        try:
            reg.git.push(remote, [f"refs/tags/{f.subject}"])
        except GitError:
            return False
        return True
    return False


def _reset_untagged(reg: Registry, version: str) -> bool:
    """Undo a ``register … VERSION`` commit that is HEAD and has no tag: the commit goes, the
    paths it changed come back as its parent has them."""
    head = reg.git.rev_parse("HEAD")
    if head is None or reg.git.tag(version) is not None:
        return False
    subject = reg.git.commit_message(head).splitlines()[0] if head else ""
    if not subject.startswith("register ") or not subject.endswith(f" {version}"):
        return False
    paths = reg.git.changed_files(head)
    reg.git.reset_last_commit(head)
    tops = sorted({p if p == mf.MANIFEST_FILE else p.rsplit("/", 1)[0] for p in paths})
    reg.git.restore(tops)
    return True


def _repair_register(reg: Registry, journal: Path) -> bool:
    try:
        entry = dict(json.loads(journal.read_text()))
    except (OSError, ValueError):
        journal.unlink(missing_ok=True)  # torn before it was complete: nothing had started
        return True
    version = str(entry["version"])
    model_path = str(entry["model_path"])
    stash = Path(str(entry["stash"]))
    model_dir = reg.root / model_path
    if reg.git.tag(version) is not None:
        # The registration completed its tag: finish it.
        shutil.rmtree(stash, ignore_errors=True)
        journal.unlink(missing_ok=True)
        return True
    head = reg.git.rev_parse("HEAD")
    if head is not None:
        subject = reg.git.commit_message(head).splitlines()[0]
        if subject == f"register {entry['model']} {version}":
            reg.git.reset_last_commit(head)
    paths = [model_path, mf.MANIFEST_FILE]
    reg.git.unstage(paths)
    manifest_head = reg.git.read_file("HEAD", mf.MANIFEST_FILE)
    if entry.get("moved"):
        if stash.exists():  # the folder was moved aside: put it back
            if model_dir.exists():
                shutil.rmtree(model_dir)
            model_dir.parent.mkdir(parents=True, exist_ok=True)
            os.rename(stash, model_dir)
        # else: killed before the move, the folder is still the old one
    else:
        reg.git.restore([model_path])  # the model folder did not exist before
        if model_dir.exists():
            shutil.rmtree(model_dir)
    if manifest_head is not None:
        mf.atomic_write(reg.manifest_path, manifest_head)
    with contextlib.suppress(OSError):
        parent = model_dir.parent
        while parent != reg.root and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    journal.unlink(missing_ok=True)
    return True


def _repair_manifest_change(reg: Registry, journal: Path) -> bool:
    """Bring models.yaml (working tree and index) in step with HEAD, then drop the journal."""
    from gitreg.lifecycle import sync_manifest

    head = reg.git.read_file("HEAD", mf.MANIFEST_FILE)
    if head is not None:
        sync_manifest(reg, head)
    journal.unlink(missing_ok=True)
    return True


def _repair_stash(reg: Registry, stash: Path) -> bool:
    model = stash.name.rpartition("-")[0]
    try:
        entry = reg.manifest().model.models.get(model)
    except GitregError:
        entry = None
    model_path = entry.path if entry else f"models/{model}"
    model_dir = reg.root / model_path
    if reg.git.changed_paths([model_path]):
        if model_dir.exists():
            shutil.rmtree(model_dir)
        model_dir.parent.mkdir(parents=True, exist_ok=True)
        os.rename(stash, model_dir)
        reg.git.unstage([model_path])
    else:
        shutil.rmtree(stash, ignore_errors=True)
    return True
