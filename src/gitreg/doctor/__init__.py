"""`gitreg doctor`: find (and with ``fix`` repair) what an interrupted command can leave behind.

Every mutating command is ordered so that a kill at any point leaves the old state, the new
state, or one of the states below, which ``run`` detects and ``fix`` repairs:

* an interrupted registration (``.git/gitreg/journal/<model>-<pid>.json`` left behind):
  - killed before its tag was made: it is undone. The model folder comes back from the stash
    (``.git/gitreg/stash``), ``models.yaml`` from HEAD; a ``register MODEL VERSION`` commit
    without its tag is reset (``git reset --soft HEAD~1``, then the paths are restored).
    Decision: such a version was never reported registered, so undoing is always safe, whereas
    tagging it would publish a version nobody saw succeed; bytes already uploaded stay on the
    DVC remote as unreferenced garbage (harmless; `gitreg cleanup` is the safe way to free space).
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
* tags that do not parse, commits without the bundle pointers their tag records, an invalid
  models.yaml, unreadable notes: reported.
* bytes missing from the DVC remote: those of every staged version (production, staging,
  canary) always — one existence query, unless ``offline`` — and with ``remote_check`` those
  of every version. An error: a replica would wait for ever for them. (``dvc gc -w -c`` keeps
  only the checked-out commit's bytes: the way they usually go.)
* version tags not on the Git remote: reported; pushed with ``fix`` and ``push``. A version tag
  whose name the remote holds for another tag object (registered elsewhere first): reported
  with the repair.
"""

from __future__ import annotations

from pathlib import Path

from gitreg import journal
from gitreg import manifest as mf
from gitreg.context import Context
from gitreg.doctor.findings import DoctorReport, Finding, Severity
from gitreg.doctor.local import (
    check_git_locks,
    check_journal,
    check_lock,
    check_manifest,
    check_manifest_journal,
    check_stash,
    check_temp_files,
    check_untagged_commits,
)
from gitreg.doctor.tags import check_notes, check_remote_tags, check_tags
from gitreg.errors import GitError, GitregError, NeedsWorkingTree

__all__ = ["DoctorReport", "Finding", "Severity", "run"]


def run(
    ctx: Context, *, fix: bool = False, remote_check: bool = False, push: bool = False, offline: bool = False
) -> DoctorReport:
    if ctx.bare:
        raise NeedsWorkingTree("doctor")
    if not fix:
        findings, count, looked = _checks(ctx, remote_check, offline)
        return _report(findings, count, looked, fix, remote_check, root=str(ctx.root))
    # Taking the lock rewrites its note and releasing it clears it: a stale note is read first.
    stale = [f for f in check_lock(ctx, False) if f.check == "stale-lock"]
    with ctx.lock():  # no registration runs while we repair (a dead one holds no lock)
        first, _, _ = _checks(ctx, remote_check, offline, lock_held=True)
        fixed = stale + [f for f in first if f.fixable and _repair(ctx, f, push)]
        ctx.invalidate()
        findings, count, looked = _checks(ctx, remote_check, offline, lock_held=True)
    for f in fixed:
        f.fixed = True
    return _report([*fixed, *findings], count, looked, fix, remote_check, root=str(ctx.root))


def _report(
    findings: list[Finding], count: int, looked: int, fix: bool, remote_check: bool, *, root: str
) -> DoctorReport:
    ok = not any(not f.fixed and f.severity != "info" for f in findings)
    return DoctorReport(
        root=root,
        ok=ok,
        fix=fix,
        remote_check=remote_check,
        versions=count,
        bytes_checked=looked,
        findings=findings,
    )


# -- checks -------------------------------------------------------------------------------------
def _checks(
    ctx: Context, remote_check: bool, offline: bool, lock_held: bool = False
) -> tuple[list[Finding], int, int]:
    out: list[Finding] = []
    out += check_journal(ctx, lock_held)
    out += check_manifest_journal(ctx, lock_held)
    out += check_stash(ctx, lock_held)
    out += check_lock(ctx, lock_held)
    out += check_git_locks(ctx)
    out += check_temp_files(ctx)
    out += check_untagged_commits(ctx)
    out += check_manifest(ctx)
    tag_findings, count, looked = check_tags(ctx, remote_check, offline)
    out += tag_findings
    out += check_notes(ctx)
    # A tag that is no version has its one finding above: its being unpushed is not another.
    out += check_remote_tags(ctx, skip={f.subject for f in tag_findings if f.check in ("tag", "pointer")})
    return out, count, looked


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
