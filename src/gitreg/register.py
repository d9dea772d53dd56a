"""`gitreg register`: a bundle becomes a version, as a transaction whose steps the journal names.

Ordered so that a failure leaves the repository as it was: bytes are uploaded before anything is
committed or tagged, the working tree is restored on any error, and a tag exists only once its
bytes are on the remote. A kill at any step (``journal.CRASH_POINTS``) leaves the journal for
`gitreg doctor --fix` to finish or undo.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from gitreg import manifest as mf
from gitreg import policy as load_policy
from gitreg.context import Context
from gitreg.errors import (
    BundleError,
    DirtyWorkingTree,
    GitError,
    MetadataError,
    PushFailed,
    StorageError,
    VersionExists,
    writing,
)
from gitreg.journal import checkpoint, keep_manifest, restore_model_folder, stash_path, write_register_journal
from gitreg.metadata import (
    MAX_METADATA_BYTES,
    FileDigest,
    format_tag_message,
    parse_metadata,
    summary_from,
    summary_problem,
)
from gitreg.versions import check_model_name, next_free, parse_version


class RegisterResult(BaseModel):
    version: str
    model: str
    commit: str
    files: list[FileDigest]
    uploaded: int
    pushed: bool
    remote: str | None = None
    retries: int = 0  # pushes refused because another machine claimed the name or moved the branch


#: How many times `register --push` re-bases and re-names after another machine got there first.
MAX_PUSH_RETRIES = 5


class _Claim:
    """Publishing a registration: the branch and the tag go to the remote in one atomic push;
    when it is refused because another machine pushed first, the register commit is re-made on
    top of the remote branch (it only replaces its own model's folder, so that never conflicts),
    re-named to the next name free on the remote, re-tagged and pushed again."""

    def __init__(
        self,
        ctx: Context,
        remote: str,
        model: str,
        model_path: str,
        name: str,
        commit: str,
        message: str | None,
        sign: bool,
        named: bool,
    ) -> None:
        self.ctx, self.remote, self.model, self.model_path = ctx, remote, model, model_path
        self.name, self.commit, self.message, self.sign, self.named = name, commit, message, sign, named
        self.branch = ctx.git.current_branch()

    def refspecs(self, name: str, commit: str) -> list[str]:
        refs = [f"refs/tags/{name}"]
        if self.branch:
            refs.insert(0, f"{commit}:refs/heads/{self.branch}")
        return refs

    def publish(self, tag_message: Callable[[str], str]) -> tuple[str, str, int]:
        """(final name, final commit, retries) once the remote holds both; PushFailed otherwise,
        with the local repository as the registration left it."""
        git = self.ctx.git
        name, commit = self.name, self.commit
        for attempt in range(MAX_PUSH_RETRIES + 1):
            try:
                git.push(self.remote, self.refspecs(name, commit), atomic=True)
            except GitError as e:
                reason = e.message
            else:
                if commit != self.commit:
                    try:
                        git.move_head(commit)
                    except GitError as moved:  # published: only this clone lags behind
                        raise GitError(
                            "reset --keep",
                            moved.stderr,
                            f"{name} is registered and pushed; bring this clone along: git fetch "
                            f"{self.remote} && git reset --keep {self.remote}/{self.branch}",
                        ) from None
                    self._fetch_their_tags()
                    self.ctx.invalidate()
                return name, commit, attempt
            if attempt == MAX_PUSH_RETRIES or self.branch is None:
                break
            rebased = self._rebase(tag_message, name, commit)
            if rebased is None:
                break
            name, commit = rebased
        self._restore(name, commit, tag_message)
        raise PushFailed(
            self.model, self.name, self.remote, self.refspecs(self.name, "HEAD"), reason
        ) from None

    def _rebase(self, tag_message: Callable[[str], str], name: str, commit: str) -> tuple[str, str] | None:
        """Fetch the remote branch, re-make the register commit on top of it under the next name
        free here and there, and move the local tag; None when the refusal was not a race (the
        remote could not be read, or has neither moved nor taken the name)."""
        git = self.ctx.git
        assert self.branch is not None
        tracking = f"refs/remotes/{self.remote}/{self.branch}"
        try:
            git.fetch(self.remote, [f"+refs/heads/{self.branch}:{tracking}"])
        except GitError:
            return None
        remote_head = git.rev_parse(tracking)
        remote_tags = git.remote_tags(self.remote)
        if remote_head is None or remote_tags is None:
            return None
        parent = git.rev_parse(f"{commit}~1")
        if remote_head == parent and name not in remote_tags:
            return None  # neither raced: a hook or a permission refused it
        if self.named and self.name in remote_tags:
            raise VersionExists(self.name)
        files: dict[str, bytes] = {}
        ours = git.read_file(self.commit, mf.MANIFEST_FILE)
        base = git.read_file(f"{self.commit}~1", mf.MANIFEST_FILE) if parent else None
        theirs = git.read_file(remote_head, mf.MANIFEST_FILE)
        if ours is not None and ours != base:  # this registration added its model to models.yaml
            if theirs is None:
                files[mf.MANIFEST_FILE] = ours
            else:  # add it to the remote's models.yaml (a text merge would conflict on two additions)
                manifest = mf.loads(theirs.decode(errors="replace"))
                if manifest.ensure_model(self.model, self.model_path):
                    files[mf.MANIFEST_FILE] = manifest.dumps().encode()
        taken = ({t.name for t in git.version_tags()} - {name}) | remote_tags
        new_name = self.name if self.named else next_free(self.ctx.clock(), taken)
        subject = f"register {self.model} {new_name}"
        msg = f"{subject}\n\n{self.message.strip()}\n" if self.message else f"{subject}\n"
        new_commit = git.replant(remote_head, self.commit, self.model_path, files, msg)
        git.delete_tag(name)  # this registration's tag so far (no branch holds a retry's commit)
        git.create_tag(new_name, new_commit, tag_message(new_name), sign=self.sign)
        return new_name, new_commit

    def _fetch_their_tags(self) -> None:
        """The version tags the remote has and this repository lacks (the other machines'
        registrations, now in this branch's history): fetched, as `git pull` would."""
        git = self.ctx.git
        theirs = git.remote_tags(self.remote) or set()
        missing = sorted(theirs - {t.name for t in git.version_tags()})
        for i in range(0, len(missing), 500):
            with contextlib.suppress(GitError):  # best effort: the registration itself is published
                git.fetch(self.remote, [f"refs/tags/{n}:refs/tags/{n}" for n in missing[i : i + 500]])

    def _restore(self, name: str, commit: str, tag_message: Callable[[str], str]) -> None:
        """After a failed publish: the registration's own tag on its own commit, as before."""
        if name == self.name and commit == self.commit:
            return
        git = self.ctx.git
        git.delete_tag(name)
        git.create_tag(self.name, self.commit, tag_message(self.name), sign=self.sign)


def register(
    ctx: Context,
    bundle_dir: Path | str,
    model: str,
    *,
    version: str | None = None,
    message: str | None = None,
    push: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    sign: bool = False,
) -> RegisterResult:
    """Copy a bundle into ``models/<model>/``, upload its bytes, commit, tag (a signed tag
    with ``sign``: git's own signing, SSH or GPG as ``gpg.format`` and ``user.signingkey`` say).

    A journal under ``.git/gitreg/journal/`` names the registration while it runs: if the
    process dies, `gitreg doctor --fix` finishes or undoes it (see doctor.py)."""
    from gitreg.store import METADATA_FILE, DvcStore, copy_bundle, parse_pointer, scan_bundle

    check_model_name(model)
    if version is not None:
        parse_version(version)
    bundle = Path(bundle_dir)
    files = scan_bundle(bundle)
    meta_path = bundle / METADATA_FILE
    if meta_path.stat().st_size > MAX_METADATA_BYTES:  # refuse before reading a huge file
        raise MetadataError(
            f"{bundle}/{METADATA_FILE}",
            f"is {meta_path.stat().st_size} bytes; the limit is {MAX_METADATA_BYTES}",
        )
    meta = parse_metadata(meta_path.read_bytes(), f"{bundle}/{METADATA_FILE}")
    ctx.require_registry()
    ident = ctx.git.ident()
    remote = ctx.remote() if push else None

    with ctx.lock():
        checkpoint("locked")
        ctx.invalidate()
        manifest = ctx.manifest()
        if manifest.model.policy.max_bundle_bytes is not None:
            total = sum((bundle / f).stat().st_size for f in files)
            too_big = load_policy.size_refusal(manifest.model.policy, total)
            if too_big is not None:
                raise BundleError(
                    str(bundle),
                    f"is {total} bytes, over the {too_big.limit} of models.yaml's policy max_bundle_bytes",
                    "make the bundle smaller, or raise max_bundle_bytes in a reviewed models.yaml change",
                )
        entry = manifest.model.models.get(model)
        model_path = entry.path if entry else f"models/{model}"
        dirty = ctx.git.changed_paths([model_path, mf.MANIFEST_FILE])
        if dirty:
            raise DirtyWorkingTree(dirty)
        existing = {t.name for t in ctx.git.version_tags()}
        if version is not None and version in existing:
            raise VersionExists(version)
        name = version or next_free(ctx.clock(), existing)

        model_dir = ctx.root / model_path
        stash = stash_path(ctx, model)
        moved = False
        kept: Path | None = None
        with writing(".git/gitreg/journal"):
            journal = write_register_journal(ctx, model, model_path, name, stash, model_dir.exists())
        try:
            if model_dir.exists():
                shutil.rmtree(stash, ignore_errors=True)
                with writing(str(stash.relative_to(ctx.root))):
                    stash.parent.mkdir(parents=True, exist_ok=True)
                    os.rename(model_dir, stash)
                moved = True
                checkpoint("stashed")
            copied = copy_bundle(bundle, files, model_dir, progress, shown_as=model_path)
            if manifest.ensure_model(model, model_path):
                with writing(mf.MANIFEST_FILE):
                    kept = keep_manifest(ctx, journal)
                    manifest.save(ctx.manifest_path)
            checkpoint("copied")
            store = DvcStore(ctx.root)
            data_files = [f"{model_path}/{f.path}" for f in copied if f.path != METADATA_FILE]
            with store.session():  # one DVC repo for both steps
                # gitreg hashed each file while copying it: DVC takes those md5s (no re-read)
                store.track(data_files, hashed={f"{model_path}/{f.path}": f for f in copied})
                checkpoint("tracked")
                uploaded = store.upload(data_files)
            checkpoint("uploaded")
            digests = []
            for f in copied:
                if f.path == METADATA_FILE:
                    continue
                ptr_path = model_dir / (f.path + ".dvc")
                ptr = parse_pointer(ptr_path.read_bytes(), f"{model_path}/{f.path}.dvc")
                if ptr.md5 != f.md5:
                    raise StorageError(
                        f"{f.path}: DVC recorded {ptr.md5}, gitreg hashed {f.md5}",
                        "the file changed while it was being registered; retry",
                    )
                digests.append(FileDigest(path=f.path, md5=f.md5, size=f.size))
            meta_file = next(f for f in copied if f.path == METADATA_FILE)
            digests.append(FileDigest(path=METADATA_FILE, md5=meta_file.md5, size=meta_file.size))
            now = ctx.clock()
            summary = summary_from(
                meta, model=model, version=name, files=digests, registered_at=now, registered_by=ident
            )
            problem = summary_problem(summary)
            if problem is not None:  # a tag that would not list: refused before it is made
                raise MetadataError(METADATA_FILE, problem.replace("it lists", "the bundle has", 1))
            commit_msg = (
                f"register {model} {name}\n\n{message.strip()}\n" if message else f"register {model} {name}\n"
            )
            commit = ctx.git.commit_paths([model_path, mf.MANIFEST_FILE], commit_msg, allow_empty=True)
            checkpoint("committed")
        except BaseException:
            restore_model_folder(
                ctx, model_dir, stash if moved else None, kept, [model_path, mf.MANIFEST_FILE]
            )
            journal.unlink(missing_ok=True)
            raise
        try:
            ctx.git.create_tag(name, commit, format_tag_message(summary, message), sign=sign)
        except BaseException:
            ctx.git.reset_last_commit(commit)
            restore_model_folder(
                ctx, model_dir, stash if moved else None, kept, [model_path, mf.MANIFEST_FILE]
            )
            journal.unlink(missing_ok=True)
            raise
        checkpoint("tagged")
        if moved:
            shutil.rmtree(stash, ignore_errors=True)
        if kept is not None:
            kept.unlink(missing_ok=True)
        journal.unlink(missing_ok=True)
        checkpoint("done")
        ctx.invalidate()

    pushed = False
    retries = 0
    if push and remote:
        claim = _Claim(ctx, remote, model, model_path, name, commit, message, sign, version is not None)
        name, commit, retries = claim.publish(
            lambda v: format_tag_message(summary.model_copy(update={"version": v}), message)
        )
        pushed = True
    return RegisterResult(
        version=name,
        model=model,
        commit=commit,
        files=digests,
        uploaded=uploaded,
        pushed=pushed,
        remote=remote,
        retries=retries,
    )
