"""`gitreg register`: a bundle becomes a version, as a transaction whose steps the journal names.

Ordered so that a failure leaves the repository as it was: bytes are uploaded before anything is
committed or tagged, the working tree is restored on any error, and a tag exists only once its
bytes are on the remote. A kill at any step (``journal.CRASH_POINTS``) leaves the journal for
`gitreg doctor --fix` to finish or undo.
"""

from __future__ import annotations

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
)
from gitreg.journal import checkpoint, restore_model_folder, stash_path, write_register_journal
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
        manifest_before = ctx.manifest_path.read_bytes() if ctx.manifest_path.exists() else None
        moved = False
        journal = write_register_journal(ctx, model, model_path, name, stash, model_dir.exists())
        try:
            if model_dir.exists():
                shutil.rmtree(stash, ignore_errors=True)
                stash.parent.mkdir(parents=True, exist_ok=True)
                os.rename(model_dir, stash)
                moved = True
                checkpoint("stashed")
            copied = copy_bundle(bundle, files, model_dir, progress)
            if manifest.ensure_model(model, model_path):
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
                ctx, model_dir, stash if moved else None, manifest_before, [model_path, mf.MANIFEST_FILE]
            )
            journal.unlink(missing_ok=True)
            raise
        try:
            ctx.git.create_tag(name, commit, format_tag_message(summary, message), sign=sign)
        except BaseException:
            ctx.git.reset_last_commit(commit)
            restore_model_folder(
                ctx, model_dir, stash if moved else None, manifest_before, [model_path, mf.MANIFEST_FILE]
            )
            journal.unlink(missing_ok=True)
            raise
        checkpoint("tagged")
        if moved:
            shutil.rmtree(stash, ignore_errors=True)
        journal.unlink(missing_ok=True)
        checkpoint("done")
        ctx.invalidate()

    pushed = False
    if push and remote:
        branch = ctx.git.current_branch()
        refspecs = [f"refs/tags/{name}"]
        if branch:
            refspecs.insert(0, f"HEAD:refs/heads/{branch}")
        try:
            ctx.git.push(remote, refspecs)
        except GitError as e:
            raise PushFailed(model, name, remote, refspecs, e.message) from None
        pushed = True
    return RegisterResult(
        version=name,
        model=model,
        commit=commit,
        files=digests,
        uploaded=uploaded,
        pushed=pushed,
        remote=remote,
    )
