"""The only module that imports DVC: track bundle files, upload them, fetch and verify them.

A bundle is a folder as a trainer exports it (``policy.pt`` or ``policy.safetensors`` +
``metadata.json`` + maybe more).
Every file but ``metadata.json`` is tracked by DVC (one ``<file>.dvc`` pointer each) and its
bytes live in the DVC cache and remote. Reads stream: bytes are hashed while they are copied,
in fixed-size chunks (the md5 in a second thread), so memory stays flat in the bundle's size.

Each byte is hashed once per direction. ``register`` hands DVC the md5 gitreg computed while
copying the bundle in (through DVC's state database), so ``dvc add`` does not read the file
again; uploads to S3 go in small parts, a few at a time. ``pull`` reads objects by md5 straight
from DVC's cache or remote (a folder remote as a file, S3 as one streamed GET) and verifies
every md5 on the way.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from gitreg.errors import BundleError, DigestMismatch, StorageError

METADATA_FILE = "metadata.json"
POLICY_FILE = "policy.pt"  # TorchScript, or a state dict read with torch.load(weights_only=True)
SAFETENSORS_FILE = "policy.safetensors"  # a state dict in safetensors (tensors only)
POLICY_FILES = (POLICY_FILE, SAFETENSORS_FILE)  # a bundle has exactly one of them
POINTER_SUFFIX = ".dvc"
CHUNK = 8 << 20
DEFAULT_REMOTE_NAME = "storage"
MAX_POINTER_BYTES = 64 << 10
UPLOAD_JOBS = 4  # S3 multipart parts in flight per upload (see _multipart_remote)
UPLOAD_PART_BYTES = 8 << 20  # S3 multipart part size (s3fs's default is 50 MiB)

# progress(file, bytes_done, bytes_total): called as bytes move; the CLI draws the bar.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class BundleFile:
    """A file of a bundle, relative to the bundle folder (posix separators)."""

    path: str
    size: int
    md5: str
    # (st_ino, st_mtime_ns) of the copy gitreg hashed: lets `track` hand the md5 to DVC only
    # while the file is still exactly the one that was hashed.
    stat: tuple[int, int] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Pointer:
    """What a committed ``<file>.dvc`` says: which bytes the file must have."""

    path: str  # relative to the bundle folder
    md5: str
    size: int | None


def _quiet_dvc() -> None:
    # DVC logs progress and hints to stdout; a library must not print.
    _quiet_dvc_logs()
    from dvc.ui import ui

    ui.error_console.quiet = True  # `dvc add` draws a "Checking graph" spinner there


def _quiet_dvc_logs() -> None:
    log = logging.getLogger("dvc")
    for h in list(log.handlers):
        log.removeHandler(h)
    log.addHandler(logging.NullHandler())
    log.setLevel(logging.WARNING)
    log.propagate = False


def _dvc_env() -> None:
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("DVC_NO_UPDATER", "1")


# -- bundle folders (no DVC needed) ------------------------------------------------------------
def scan_bundle(folder: Path) -> list[str]:
    """The bundle's files (posix paths relative to ``folder``), checked to be regular files
    inside it: no links, devices or paths out of the folder."""
    shown = str(folder)
    if not folder.is_dir():
        raise BundleError(shown, "is not a folder", "pass the folder holding policy.pt and metadata.json")
    files: list[str] = []
    base = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for d in list(dirnames):
            full = Path(dirpath) / d
            if full.is_symlink():
                raise BundleError(
                    shown,
                    f"{full.relative_to(folder)} is a symbolic link",
                    "copy the real files into the bundle folder",
                )
            if d in {".git", ".dvc"}:
                raise BundleError(shown, f"contains a {d} folder", "export the bundle to a plain folder")
        for name in filenames:
            full = Path(dirpath) / name
            rel = full.relative_to(folder).as_posix()
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                raise BundleError(
                    shown, f"{rel} is a symbolic link", "copy the real file into the bundle folder"
                )
            if not stat.S_ISREG(st.st_mode):
                raise BundleError(shown, f"{rel} is not a regular file", "remove it from the bundle folder")
            if not full.resolve().is_relative_to(base):
                raise BundleError(shown, f"{rel} resolves outside the folder", "copy the real file in")
            if rel.endswith(POINTER_SUFFIX) or name == ".gitignore":
                raise BundleError(
                    shown,
                    f"{rel}: names ending in .dvc and .gitignore are reserved",
                    "rename or remove that file",
                )
            files.append(rel)
    if METADATA_FILE not in files:
        raise BundleError(shown, "has no metadata.json", "export metadata.json beside policy.pt")
    policies = [f for f in POLICY_FILES if f in files]
    if not policies:
        raise BundleError(
            shown,
            "has no policy.pt or policy.safetensors",
            "export the model as policy.pt (TorchScript or a state dict) or policy.safetensors",
        )
    if len(policies) > 1:
        raise BundleError(
            shown, "has both policy.pt and policy.safetensors", "keep exactly one policy file in the bundle"
        )
    return sorted(files)


def policy_file(files: Iterable[str]) -> str | None:
    """Which of a bundle's files (paths relative to it) is the policy, or None."""
    present = set(files)
    return next((f for f in POLICY_FILES if f in present), None)


def md5_file(path: Path, progress: Progress | None = None, label: str = "") -> tuple[str, int]:
    h = hashlib.md5(usedforsecurity=False)
    size = path.stat().st_size
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            done += len(chunk)
            if progress:
                progress(label or path.name, done, size)
    return h.hexdigest(), done


def parse_pointer(raw: bytes, source: str) -> Pointer:
    """Parse a ``.dvc`` file (untrusted: safe YAML, one plain output, a path in its folder)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    if len(raw) > MAX_POINTER_BYTES:
        raise StorageError(f"{source}: pointer file is too large", "restore it from history")
    try:
        doc = YAML(typ="safe", pure=True).load(raw)
    except YAMLError:
        raise StorageError(f"{source}: not a valid DVC pointer", "restore it from history") from None
    outs = doc.get("outs") if isinstance(doc, dict) else None
    if not isinstance(outs, list) or len(outs) != 1 or not isinstance(outs[0], dict):
        raise StorageError(f"{source}: expected exactly one output", "one .dvc file per bundle file")
    out = outs[0]
    md5, path, size = out.get("md5"), out.get("path"), out.get("size")
    if not isinstance(md5, str) or len(md5) != 32 or any(c not in "0123456789abcdef" for c in md5):
        raise StorageError(f"{source}: no md5 digest", "re-register the bundle")
    p = PurePosixPath(str(path))
    if not isinstance(path, str) or p.is_absolute() or ".." in p.parts or len(p.parts) != 1:
        raise StorageError(
            f"{source}: output path {path!r} leaves its folder", "the pointer was tampered with"
        )
    if size is not None and (not isinstance(size, int) or size < 0):
        raise StorageError(f"{source}: bad size", "re-register the bundle")
    return Pointer(path=path, md5=md5, size=size)


# -- DVC ---------------------------------------------------------------------------------------
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
    def is_initialized(root: Path) -> bool:
        return (root / ".dvc" / "config").exists() or (root / ".dvc").is_dir()

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
                multipart = _multipart_remote(repo)
                if multipart is not None:
                    return self._upload_in_parts(repo, *multipart, paths)
                targets = [str(self.root / (p + POINTER_SUFFIX)) for p in paths]
                return int(repo.push(targets) or 0)
            except Exception as e:
                raise StorageError(
                    f"upload to the DVC remote failed: {_first_line(e)}",
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
                raise StorageError(f"cannot read revision {rev[:12]} with DVC: {_first_line(e)}") from None
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
                f"cannot use the DVC remote: {_first_line(e)}",
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
                raise StorageError(f"cannot list the DVC remote: {_first_line(e)}") from None

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
                raise StorageError(f"cannot list the DVC remote: {_first_line(e)}") from None

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
                    f"removing objects from the DVC remote failed: {_first_line(e)}",
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
                self._remote_error = _first_line(e)
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
                src = _open_object(remote, remote.oid_to_path(pointer.md5))
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
            why = _first_line(e) if remote is not None else f"{self._remote_error}; {_first_line(e)}"
            raise StorageError(f"{repo_path}: cannot read from the DVC remote: {why}") from None
        with src:
            copy_verified(src, dest, pointer, label=label, progress=progress)


def _open_object(odb: Any, path: str) -> Any:
    """A binary reader of one object of a DVC object database: a plain file for a local
    folder, one streamed GET for S3, the remote filesystem's own reader otherwise."""
    fs = odb.fs
    if fs.protocol == "local":
        return open(path, "rb")  # the caller closes it
    inner = getattr(fs, "fs", None)
    if fs.protocol == "s3" and hasattr(inner, "_call_s3") and hasattr(inner, "loop"):
        return _S3Stream(inner, path)
    return fs.open(path, "rb")


class _S3Stream:
    """One S3 object as a single streamed GET through DVC's s3fs client, read ahead by one
    chunk (the network and the hash/write overlap; memory stays a few chunks). A connection
    dropped mid-way is resumed with a ranged GET from the byte reached.

    s3fs's own reader fetches ranged blocks of 50 MiB each; one GET is what S3 serves
    fastest, and what a server that materializes the object per request (moto) can serve."""

    RETRIES = 5

    def __init__(self, s3: Any, path: str) -> None:
        self._s3 = s3
        self._bucket, self._key, self._version = s3.split_path(path)
        self._body: Any = None
        self._received = 0
        self._size: int | None = None  # from the first response
        self._ahead: Future[bytes] | None = None
        self._run(self._open())

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._s3.loop).result()

    async def _open(self) -> None:
        kw: dict[str, Any] = dict(getattr(self._s3, "req_kw", None) or {})
        if self._version:
            kw["VersionId"] = self._version
        if self._received:
            kw["Range"] = f"bytes={self._received}-"
        resp = await self._s3._call_s3("get_object", Bucket=self._bucket, Key=self._key, **kw)
        self._body = resp["Body"]
        if self._size is None and isinstance(resp.get("ContentLength"), int):
            self._size = resp["ContentLength"]

    async def _read(self, n: int) -> bytes:
        from s3fs.core import S3_RETRYABLE_ERRORS

        parts: list[bytes] = []
        got = failures = 0
        while got < n and (self._size is None or self._received < self._size):
            try:
                piece = await self._body.read(n - got)
            except S3_RETRYABLE_ERRORS:
                failures += 1
                if failures > self.RETRIES:
                    raise
                self._body.close()
                await self._open()
                continue
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
            self._received += len(piece)
        return b"".join(parts)

    def read(self, n: int) -> bytes:
        if self._ahead is None:
            self._ahead = asyncio.run_coroutine_threadsafe(self._read(n), self._s3.loop)
        chunk = self._ahead.result()
        self._ahead = asyncio.run_coroutine_threadsafe(self._read(n), self._s3.loop) if chunk else None
        return chunk

    async def _aclose(self) -> None:
        if self._body is not None:
            self._body.close()

    def close(self) -> None:
        if self._ahead is not None:
            self._ahead.cancel()
            with suppress(Exception):
                self._ahead.result()
            self._ahead = None
        with suppress(Exception):
            self._run(self._aclose())

    def __enter__(self) -> _S3Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class RemovedObjects:
    """The md5 objects that :meth:`DvcStore.remove_objects` actually deleted, per place."""

    remote: list[str] = field(default_factory=list)
    cache: list[str] = field(default_factory=list)


def _copy_hashing(
    read: Callable[[int], bytes], out: IO[bytes], label: str, total: int, progress: Progress | None
) -> tuple[str, int]:
    """Copy chunk by chunk from ``read`` to ``out``, hashing on the way: (md5, bytes copied).

    The md5 of a chunk runs in a second thread while this one writes it and reads the next
    (hashlib and file I/O release the GIL), so a copy costs about as long as hashing alone.
    At most two chunks are in memory; the hash is of exactly the bytes written."""
    h = hashlib.md5(usedforsecurity=False)
    done = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gitreg-md5") as pool:
        pending: Future[None] | None = None
        try:
            while chunk := read(CHUNK):
                if pending is not None:
                    pending.result()  # in order; and bounds memory to this chunk + the one hashing
                pending = pool.submit(h.update, chunk)
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(label, done, total)
        finally:
            if pending is not None:
                pending.result()
    return h.hexdigest(), done


def copy_verified(
    src: IO[bytes], dest: Path, pointer: Pointer, *, label: str = "", progress: Progress | None = None
) -> None:
    """Copy a stream to ``dest`` while hashing it; on an md5 or size mismatch, delete ``dest``."""

    def read(n: int) -> bytes:
        try:
            return src.read(n)
        except Exception as e:
            raise StorageError(f"{label}: read failed mid-way: {_first_line(e)}") from None

    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(dest, "wb") as out:
            actual, done = _copy_hashing(read, out, label, pointer.size or 0, progress)
        if actual != pointer.md5 or (pointer.size is not None and done != pointer.size):
            raise DigestMismatch(label, pointer.md5, actual)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def copy_bundle(
    src_dir: Path, files: list[str], dest_dir: Path, progress: Progress | None = None
) -> list[BundleFile]:
    """Copy bundle files into the working tree, hashing them on the way."""
    result = []
    for rel in files:
        src = src_dir / rel
        dst = dest_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        with open(src, "rb") as fi, open(dst, "wb") as fo:
            md5, done = _copy_hashing(fi.read, fo, rel, src.stat().st_size, progress)
            fo.flush()
        shutil.copymode(src, dst)
        st = os.stat(dst)  # after the last write: its mtime is that of the hashed bytes
        result.append(BundleFile(rel, done, md5, stat=(st.st_ino, st.st_mtime_ns)))
    return result


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def _multipart_remote(repo: Any) -> tuple[Any, int] | None:
    """(md5 object database, parts in flight) when the default remote is a plain S3 remote
    that gitreg uploads to in small parts (see ``DvcStore._upload_in_parts``); None for the
    rest (local folders, other clouds, version-aware or worktree remotes), which ``dvc push``
    handles. The remote's ``jobs`` (``dvc remote modify NAME jobs N``) sets the parts in
    flight; UPLOAD_JOBS otherwise (DVC's default, 4 per CPU, with s3fs's 50 MiB parts holds
    hundreds of MiB in memory)."""
    conf = repo.config
    name = conf["core"].get("remote")
    remote = conf["remote"].get(name) if name else None
    if not remote or not str(remote.get("url", "")).startswith("s3://"):
        return None
    if remote.get("version_aware") or remote.get("worktree"):
        return None
    odb = repo.cloud.get_remote_odb(name, "push", hash_name="md5")
    if odb.fs.protocol != "s3" or not hasattr(getattr(odb.fs, "fs", None), "_put_file"):
        return None
    jobs = remote.get("jobs")
    return odb, int(jobs) if jobs else UPLOAD_JOBS
