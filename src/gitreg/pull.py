"""`gitreg pull`: materialize a version's bundle, every file's md5 verified; all or nothing."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from pydantic import BaseModel

from gitreg import catalog
from gitreg import manifest as mf
from gitreg.context import Context
from gitreg.errors import GitregError, OutputExists, StorageError, disk_error, writing
from gitreg.metadata import FileDigest


class PullResult(BaseModel):
    version: str
    model: str
    out: str
    files: list[FileDigest]


def _model_path_at(ctx: Context, commit: str, model: str) -> str:
    raw = ctx.git.read_file(commit, mf.MANIFEST_FILE)
    if raw is not None:
        with contextlib.suppress(GitregError):
            entry = mf.loads_bytes(raw).model.models.get(model)
            if entry is not None:
                return entry.path
    return f"models/{model}"


def pull(
    ctx: Context,
    version: str,
    out: Path | str | None = None,
    *,
    progress: Callable[[str, int, int], None] | None = None,
) -> PullResult:
    """Materialize a version's bundle into ``out`` (default ``./VERSION``), every file's md5
    verified against its pointer; on any failure nothing is left at ``out``."""
    from gitreg.store import POINTER_SUFFIX, DvcStore, Pointer, parse_pointer

    info = catalog.get(ctx, version)
    dest = Path(out).expanduser() if out is not None else Path.cwd() / version
    dest = dest.resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise OutputExists(str(dest))
    model_path = _model_path_at(ctx, info.commit, info.model)
    entries = ctx.git.list_tree(info.commit, model_path)
    if not entries:
        raise StorageError(
            f"{version}: commit {info.commit[:12]} has no {model_path}/",
            "the tag points at an unrelated commit; see `gitreg show`",
        )
    expected = {f.path: f for f in info.files}
    pointers: list[tuple[str, Pointer]] = []
    plain: list[tuple[str, str]] = []
    prefix = model_path.rstrip("/") + "/"
    raw = ctx.git.read_objects(e.sha for e in entries)
    for e in entries:
        rel = e.path[len(prefix) :] if e.path.startswith(prefix) else e.path
        if PurePosixPath(rel).name == ".gitignore" or e.type != "blob":
            continue
        if rel.endswith(POINTER_SUFFIX):
            ptr = parse_pointer(raw[e.sha], e.path)
            file_rel = rel[: -len(POINTER_SUFFIX)]
            if PurePosixPath(file_rel).name != ptr.path:
                raise StorageError(
                    f"{e.path}: points at {ptr.path!r}, not its own file", "the pointer was tampered with"
                )
            rec = expected.get(file_rel)
            if rec is not None and rec.md5 != ptr.md5:
                raise StorageError(
                    f"{e.path}: pointer md5 {ptr.md5} differs from the tag's record {rec.md5}",
                    "the commit was altered after registration; do not use this version",
                )
            pointers.append((file_rel, Pointer(path=file_rel, md5=ptr.md5, size=ptr.size)))
        else:
            plain.append((rel, e.sha))
    created = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        for rel, sha in plain:
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            data = raw[sha]
            rec = expected.get(rel)
            if rec is not None and hashlib.md5(data, usedforsecurity=False).hexdigest() != rec.md5:
                raise StorageError(f"{rel}: differs from the tag's record", "the commit was altered")
            with writing(str(dest / rel)):
                target.write_bytes(data)
        if ctx.bare:  # DVC reads its config at that commit: a partial mirror must hold it
            ctx.git.warm_blobs(info.commit, [".dvc", ".dvcignore"])
        DvcStore(ctx.root).fetch_verified(
            info.commit,
            [(f"{model_path}/{rel}", ptr, tmp / rel) for rel, ptr in pointers],
            progress,
        )
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        if dest.exists():
            dest.rmdir()
        os.rename(tmp, dest)
    except StorageError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if "archived" not in info.stages:
            raise
        raise StorageError(
            f"{version} is archived and `gitreg cleanup` may have removed its bytes: {e.problem}",
            "pull a version that is not archived (gitreg list), or register the bundle again",
        ) from None
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:  # nothing left behind: not even the parents we made
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(e, OSError):  # a full disk, a read-only folder …: one line naming the file
            raise disk_error(e, str(e.filename or dest)) from None
        raise
    files = [FileDigest(path=r, md5=p.md5, size=p.size or 0) for r, p in pointers]
    files += [f for f in info.files if f.path in {r for r, _ in plain}]
    return PullResult(
        version=version, model=info.model, out=str(dest), files=sorted(files, key=lambda f: f.path)
    )
