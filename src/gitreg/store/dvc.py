"""The only module that imports DVC: track bundle files, upload them, fetch and verify them.

Every file of a bundle but ``metadata.json`` is tracked by DVC (one ``<file>.dvc`` pointer each)
and its bytes live in the DVC cache and remote. Each byte is hashed once per direction.
``register`` hands DVC the md5 gitreg computed while copying the bundle in (through DVC's state
database), so ``dvc add`` does not read the file again; uploads to S3 go in small parts, a few
at a time (see :mod:`gitreg.store.s3`). ``pull`` reads objects by md5 straight from DVC's cache
or remote (a folder remote as a file, S3 as one streamed GET) and verifies every md5 on the way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from gitreg.errors import DigestMismatch, StorageError, disk_error
from gitreg.store.bundle import (
    POINTER_SUFFIX,
    BundleFile,
    Pointer,
    Progress,
    copy_verified,
    first_line,
    parse_pointer,
)
from gitreg.store.s3 import UPLOAD_PART_BYTES, multipart_remote, open_object

DEFAULT_REMOTE_NAME = "storage"


def _quiet_dvc() -> None:
    # DVC logs progress and hints to stdout; a library must not print.
    _quiet_dvc_logs()
    from dvc.ui import ui

    ui.error_console.quiet = True  # `dvc add` draws a "Checking graph" spinner there


def _quiet_dvc_logs() -> None:
    # dvc_data and dvc_objects log a failed transfer ("ERROR: failed to transfer …") before
    # raising it: gitreg reports the error once, as one line.
    for name in ("dvc", "dvc_data", "dvc_objects"):
        log = logging.getLogger(name)
        for h in list(log.handlers):
            log.removeHandler(h)
        log.addHandler(logging.NullHandler())
        log.setLevel(logging.WARNING)
        log.propagate = False


def _dvc_env() -> None:
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("DVC_NO_UPDATER", "1")


class DvcStore:
    """DVC in one registry repository: its remote, tracking, upload and verified download."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._session: Any = None

    @contextmanager
    def session(self) -> Iterator[DvcStore]:
        """Keep one DVC ``Repo`` open for the calls inside (``track`` then ``upload``: DVC
        opens and reads the repository once, not once per call)."""
        with self._repo() as repo:
            self._session = repo
            try:
                yield self
            finally:
                self._session = None

    @contextmanager
    def _repo(self) -> Iterator[Any]:
        if self._session is not None:
            yield self._session
            return
        _dvc_env()
        from dvc.repo import Repo

        _quiet_dvc()
        try:
            repo = Repo(str(self.root))
        except Exception as e:  # NotDvcRepoError and friends
            raise StorageError(f"{self.root} is not a DVC repository ({e})", "run `gitreg init`") from None
        try:
            yield repo
        finally:
            repo.close()

    @staticmethod
    def init(root: Path) -> None:
        _dvc_env()
        from dvc.repo import Repo

        _quiet_dvc()
        Repo.init(str(root)).close()

    def default_remote(self) -> tuple[str, str] | None:
        """(name, url) of the default remote, or None."""
        with self._repo() as repo:
            conf = repo.config
            name = conf["core"].get("remote")
            if not name or name not in conf["remote"]:
                return None
            return name, str(conf["remote"][name]["url"])

    def set_remote(
        self, url: str, *, endpoint_url: str | None = None, name: str = DEFAULT_REMOTE_NAME
    ) -> None:
        with self._repo() as repo, repo.config.edit("repo") as conf:
            remote: dict[str, Any] = {"url": url}
            if endpoint_url:
                remote["endpointurl"] = endpoint_url
            conf["remote"][name] = remote
            conf["core"]["remote"] = name
            conf["core"]["analytics"] = False
            conf["core"]["autostage"] = False

    def track(self, paths: list[str], hashed: Mapping[str, BundleFile] | None = None) -> None:
        """``dvc add`` each path (relative to the repo root), writing its ``.dvc`` pointer.

        ``hashed`` maps paths to the :class:`BundleFile` that gitreg wrote and hashed there
        (:func:`copy_bundle`): their md5 goes into DVC's state database first, keyed by the
        file's inode, mtime and size exactly as DVC keys its own hashes, so ``dvc add`` takes
        it instead of reading the file once more. A file that changed since it was hashed does
        not match its entry and DVC hashes it itself."""
        if not paths:
            return
        with self._repo() as repo:
            try:
                if hashed:
                    self._save_hashes(repo, paths, hashed)
                # Absolute paths: DVC resolves from the cwd. relink=False unless the cache links
                # by hardlink: the working-tree file is already the right bytes, and with a copy
                # or reflink cache DVC would otherwise copy it back from the cache; with a
                # hardlink cache, relink puts the object into the cache as a link (no copy).
                types = list(getattr(repo.cache.local, "cache_types", None) or [])
                relink = bool(types) and types[0] == "hardlink"
                repo.add([str(self.root / p) for p in paths], relink=relink)
            except Exception as e:
                _drop_partial_objects(repo, [f.md5 for f in (hashed or {}).values()])
                os_error = _os_error_in(e)
                if os_error is not None:  # a full disk, a read-only cache …: one line naming the file
                    raise disk_error(os_error, _shown(self.root, os_error.filename, ".dvc/cache")) from None
                raise StorageError(f"dvc add failed: {e}", "check free disk space in the DVC cache") from None

    def _save_hashes(self, repo: Any, paths: list[str], hashed: Mapping[str, BundleFile]) -> None:
        from dvc_data.hashfile.hash_info import HashInfo

        items = []
        for p in paths:
            f = hashed.get(p)
            if f is None or f.stat is None:
                continue
            path = os.path.join(repo.root_dir, *PurePosixPath(p).parts)
            try:
                info = repo.fs.info(path)
                st = os.stat(path)
            except OSError:
                continue
            if (st.st_ino, st.st_mtime_ns) != f.stat or st.st_size != f.size or info["size"] != f.size:
                continue  # not the file gitreg hashed: let DVC hash it
            items.append((path, HashInfo(name="md5", value=f.md5), info))
        if items:
            repo.state.save_many(items, repo.fs)

    def upload(self, paths: list[str]) -> int:
        """Push the bytes behind these tracked paths to the default remote; raise unless all
        of them are there afterwards. Returns how many objects were transferred."""
        if not paths:
            return 0
        with self._repo() as repo:
            try:
                multipart = multipart_remote(repo)
                if multipart is not None:
                    return self._upload_in_parts(repo, *multipart, paths)
                targets = [str(self.root / (p + POINTER_SUFFIX)) for p in paths]
                return int(repo.push(targets) or 0)
            except Exception as e:
                raise StorageError(
                    f"upload to the DVC remote failed: {first_line(e)}",
                    "check the remote (`dvc remote list`), its credentials and network; nothing was tagged",
                ) from None

    def _upload_in_parts(self, repo: Any, odb: Any, concurrency: int, paths: list[str]) -> int:
        """Upload each tracked file's cache object to an object-store remote as ``dvc push``
        would (same object path, skipped when already there), but with memory bounded:
        s3fs holds ``concurrency`` parts in memory (and asyncio a copy of each part being
        sent), so parts of UPLOAD_PART_BYTES instead of s3fs's 50 MiB keep peak RSS small
        and flat in the file's size. The multipart upload completes, or raises, before this
        returns: the object is then on the remote."""
        cache = repo.cache.local
        sent = 0
        for p in paths:
            rel = p + POINTER_SUFFIX
            ptr = parse_pointer((self.root / rel).read_bytes(), rel)
            dest = odb.oid_to_path(ptr.md5)
            if odb.fs.exists(dest) and (ptr.size is None or odb.fs.size(dest) == ptr.size):
                continue  # content-addressed: the same bytes are there already
            odb.fs.put_file(
                cache.oid_to_path(ptr.md5), dest, chunksize=UPLOAD_PART_BYTES, max_concurrency=concurrency
            )
            sent += 1
        return sent

    def fetch_verified(
        self,
        rev: str,
        items: list[tuple[str, Pointer, Path]],
        progress: Progress | None = None,
    ) -> None:
        """Stream each (repo path at ``rev``, its pointer, destination) from the DVC cache or
        remote into its destination, hashing as it goes; raise DigestMismatch on any
        difference (the destination is then removed).

        Objects are read by their md5 straight from DVC's object databases: the local cache
        when it holds the object (falling back to the remote if that copy is corrupt), else
        the default remote — a local-folder remote as a plain file, S3 as one streamed GET,
        any other remote through its DVC filesystem. The remote is the one of the working
        tree's DVC config (as ``DVCFileSystem`` does for a local repository), or of ``rev``
        in a repository without a working tree (the deploy agent's bare mirror).

        With a working tree whose default remote is a plain S3 remote, no DVC ``Repo`` is
        opened: the remote's filesystem is built from the DVC config alone (see
        :meth:`_direct_sources`), which is all that reading objects by md5 needs."""
        direct = self._direct_sources(rev)
        if direct is not None:
            try:
                for repo_path, pointer, dest in items:
                    direct.fetch(repo_path, pointer, dest, progress)
            finally:
                direct.close()
            return
        with self._repo_at(rev) as repo:
            sources = _ObjectSources(repo, str(self.root), rev)
            try:
                for repo_path, pointer, dest in items:
                    sources.fetch(repo_path, pointer, dest, progress)
            finally:
                sources.close()

    def _direct_sources(self, rev: str) -> _ObjectSources | None:
        """Object sources for a working tree whose default DVC remote is a plain S3 remote,
        built from DVC's config (``.dvc/config``, ``config.local``, global and system, as DVC
        merges them) and DVC's own remote filesystem, without opening a DVC ``Repo`` (its
        import and setup cost more than the rest of a small pull). The local cache is DVC's
        default (``.dvc/cache``) or the configured ``cache.dir``. None for anything else
        (another remote type, a version-aware or worktree remote, a named local cache, no
        remote, a config DVC rejects): the ``Repo`` path then handles it, errors included."""
        dvc_dir = self.root / ".dvc"
        if not (dvc_dir / "config").is_file():
            return None
        _dvc_env()
        try:
            from dvc.config import Config
            from dvc.fs import get_cloud_fs

            _quiet_dvc_logs()
            conf = Config(dvc_dir=str(dvc_dir))
            name = conf["core"].get("remote")
            if not name or conf["cache"].get("local"):
                return None
            cls, fs_conf, fs_path = get_cloud_fs(conf, name=name)
            if cls.protocol != "s3" or fs_conf.get("version_aware") or fs_conf.get("worktree"):
                return None
            fs = cls(**fs_conf)
            if not hasattr(getattr(fs, "fs", None), "_call_s3"):
                return None
        except Exception:
            return None
        from dvc_objects.fs.local import LocalFileSystem

        cache_dir = conf["cache"].get("dir") or os.path.join(str(dvc_dir), "cache")
        cache = _ObjectPaths(LocalFileSystem(), os.path.join(str(cache_dir), "files", "md5"))
        remote = _ObjectPaths(fs, fs.join(fs_path, "files", "md5"))
        return _ObjectSources(None, str(self.root), rev, cache=cache, remote=remote)

    @contextmanager
    def _repo_at(self, rev: str) -> Iterator[Any]:
        _dvc_env()
        from dvc.repo import Repo

        _quiet_dvc()
        try:
            repo = Repo(str(self.root))
        except Exception:  # no DVC working tree here (a bare mirror): DVC's config at rev
            try:
                repo = Repo(str(self.root), rev=rev, uninitialized=True)
            except Exception as e:
                raise StorageError(f"cannot read revision {rev[:12]} with DVC: {first_line(e)}") from None
        try:
            yield repo
        finally:
            repo.close()

    # -- removing objects (gitreg cleanup) ------------------------------------------------------
    @staticmethod
    def _object_ids(md5s: Iterable[str]) -> list[str]:
        ids = list(dict.fromkeys(md5s))
        for oid in ids:
            if len(oid) != 32 or any(c not in "0123456789abcdef" for c in oid):
                raise StorageError(f"{oid!r} is not an md5 object id", "this is a bug in gitreg; report it")
        return ids

    @staticmethod
    def _object_dbs(repo: Any) -> tuple[Any, Any]:
        """The md5 object databases (DVC 3 layout ``files/md5/<2>/<30>``) of the default remote
        and of the local cache: the objects `dvc gc --cloud` works on."""
        try:
            remote = repo.cloud.get_remote_odb(None, "gitreg cleanup", hash_name="md5")
        except Exception as e:  # NoRemoteError, RemoteConfigError (cloud-versioned remotes)
            raise StorageError(
                f"cannot use the DVC remote: {first_line(e)}",
                "configure a default remote (gitreg init --remote PATH|s3://bucket/prefix)",
            ) from None
        return remote, repo.cache.local

    @staticmethod
    def _present(odb: Any, ids: list[str]) -> list[str]:
        if not ids:
            return []
        found = odb.fs.exists([odb.oid_to_path(oid) for oid in ids])
        return [oid for oid, yes in zip(ids, found, strict=True) if yes]

    def existing_objects(self, md5s: Iterable[str]) -> set[str]:
        """Which of these md5 objects are still on the default remote or in the local cache."""
        ids = self._object_ids(md5s)
        if not ids:
            return set()
        with self._repo() as repo:
            remote, cache = self._object_dbs(repo)
            try:
                return set(self._present(remote, ids)) | set(self._present(cache, ids))
            except Exception as e:
                raise StorageError(f"cannot list the DVC remote: {first_line(e)}") from None

    def remote_objects(self, md5s: Iterable[str]) -> set[str]:
        """Which of these md5 objects are on the default DVC remote (`gitreg doctor --remote-check`)."""
        ids = self._object_ids(md5s)
        if not ids:
            return set()
        with self._repo() as repo:
            remote, _cache = self._object_dbs(repo)
            try:
                return set(self._present(remote, ids))
            except Exception as e:
                raise StorageError(f"cannot list the DVC remote: {first_line(e)}") from None

    def remove_objects(self, md5s: Iterable[str]) -> RemovedObjects:
        """Delete exactly these md5 objects from the default remote and the local cache (the
        caller decided that nothing kept needs them). Objects already gone are skipped, so a
        re-run after a failure finishes the job."""
        _dvc_env()
        from dvc_data.hashfile.db import get_index

        ids = self._object_ids(md5s)
        if not ids:
            return RemovedObjects()
        with self._repo() as repo:
            remote, cache = self._object_dbs(repo)
            try:
                on_remote = self._present(remote, ids)
                if on_remote:
                    remote.fs.remove([remote.oid_to_path(oid) for oid in on_remote])
            except Exception as e:
                raise StorageError(
                    f"removing objects from the DVC remote failed: {first_line(e)}",
                    "re-run gitreg cleanup: the versions are archived, it removes what is left",
                ) from None
            finally:
                # `dvc push` trusts this index of the remote's objects: drop it (as `dvc gc
                # --cloud` does) so that re-registering the same bytes uploads them again.
                index = get_index(remote)
                try:
                    index.clear()
                finally:
                    index.close()
            try:
                in_cache = self._present(cache, ids)
                if in_cache:
                    cache.fs.remove([cache.oid_to_path(oid) for oid in in_cache])
            except OSError as e:
                raise StorageError(
                    f"removing objects from the DVC cache failed: {e}",
                    "check the permissions of .dvc/cache; then re-run gitreg cleanup",
                ) from None
        return RemovedObjects(remote=on_remote, cache=in_cache)


class _ObjectPaths:
    """What gitreg reads of a DVC md5 object database (``files/md5/<2>/<30>``): its
    filesystem and where an object lives in it (as ``HashFileDB.oid_to_path``)."""

    def __init__(self, fs: Any, path: str) -> None:
        self.fs = fs
        self.path = path

    def oid_to_path(self, oid: str) -> str:
        return str(self.fs.join(self.path, oid[:2], oid[2:]))


class _ObjectSources:
    """Where an md5 object can be read from: the local DVC cache, then the default remote
    (from ``repo``, or given as ``cache`` and ``remote`` by :meth:`DvcStore._direct_sources`)."""

    def __init__(self, repo: Any, root: str, rev: str, *, cache: Any = None, remote: Any = None) -> None:
        self.repo = repo
        self.root = root
        self.rev = rev
        self.cache: Any = cache
        if repo is not None:
            try:
                self.cache = repo.cache.local
            except Exception:
                self.cache = None
        self._remote: Any = remote
        self._remote_error: str | None = None
        self._dvcfs: Any = None

    def close(self) -> None:
        if self._dvcfs is not None and hasattr(self._dvcfs, "close"):
            self._dvcfs.close()

    def _open_with_dvcfs(self, repo_path: str) -> Any:
        """DVC's own reader of ``repo_path`` at ``rev``: for a remote that is no md5 object
        database (a version-aware or worktree cloud remote)."""
        if self._dvcfs is None:
            from dvc.api import DVCFileSystem

            self._dvcfs = DVCFileSystem(self.root, rev=self.rev)
        return self._dvcfs.open(repo_path, "rb")

    def remote(self) -> Any:
        """The default remote's md5 object database, or None (see ``_remote_error``)."""
        if self._remote is None and self._remote_error is None:
            try:
                self._remote = self.repo.cloud.get_remote_odb(None, "gitreg pull", hash_name="md5")
            except Exception as e:  # NoRemoteError and friends
                self._remote_error = first_line(e)
        return self._remote

    def fetch(self, repo_path: str, pointer: Pointer, dest: Path, progress: Progress | None) -> None:
        label = pointer.path
        mismatch: DigestMismatch | None = None
        cached = self.cache.oid_to_path(pointer.md5) if self.cache is not None else None
        if cached is not None and os.path.isfile(cached):
            try:
                with open(cached, "rb") as src:
                    copy_verified(src, dest, pointer, label=label, progress=progress)
                return
            except DigestMismatch as e:  # a corrupt cache copy: the remote may hold good bytes
                mismatch = e
        remote = self.remote()
        if remote is None and mismatch is not None:
            raise mismatch
        try:
            if remote is not None:
                src = open_object(remote, remote.oid_to_path(pointer.md5))
            else:
                src = self._open_with_dvcfs(repo_path)
        except FileNotFoundError:
            if mismatch is not None:
                raise mismatch from None
            raise StorageError(
                f"{repo_path}: bytes {pointer.md5} are in neither the DVC cache nor the remote",
                "the upload never finished or the remote was cleaned; re-register the bundle"
                if remote is not None
                else f"no usable DVC remote ({self._remote_error}): configure one (dvc remote add -d)",
            ) from None
        except Exception as e:
            why = first_line(e) if remote is not None else f"{self._remote_error}; {first_line(e)}"
            raise StorageError(f"{repo_path}: cannot read from the DVC remote: {why}") from None
        with src:
            copy_verified(src, dest, pointer, label=label, progress=progress)


@dataclass(frozen=True)
class RemovedObjects:
    """The md5 objects that :meth:`DvcStore.remove_objects` actually deleted, per place."""

    remote: list[str] = field(default_factory=list)
    cache: list[str] = field(default_factory=list)


def _os_error_in(e: BaseException) -> OSError | None:
    """The OSError ``e`` is or was raised from (DVC wraps them), if any."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, OSError) and cur.errno is not None:
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def _shown(root: Path, filename: object, default: str) -> str:
    """``filename`` relative to ``root`` when it is inside it, else as is; ``default`` if none."""
    if filename is None:
        return default
    path = Path(str(filename))
    return str(path.relative_to(root)) if path.is_absolute() and path.is_relative_to(root) else str(path)


def _drop_partial_objects(repo: Any, md5s: list[str]) -> None:
    """Remove the half-copied objects (``.dvc/cache/files/md5/XX/.NAME.tmp``) a failed `dvc add` left in the
    cache folders of ``md5s``: a full disk stays full otherwise."""
    root = getattr(repo.cache.local, "path", None)
    if not root:
        return
    for prefix in {m[:2] for m in md5s}:
        for tmp in (Path(root) / prefix).glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
