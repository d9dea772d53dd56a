"""The only module that imports DVC: track bundle files, upload them, fetch and verify them.

A bundle is a folder as a trainer exports it (``policy.pt`` or ``policy.safetensors`` +
``metadata.json`` + maybe more).
Every file but ``metadata.json`` is tracked by DVC (one ``<file>.dvc`` pointer each) and its
bytes live in the DVC cache and remote. Reads stream: bytes are hashed while they are copied,
in fixed-size chunks, so memory stays flat in the bundle's size.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
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

# progress(file, bytes_done, bytes_total): called as bytes move; the CLI draws the bar.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class BundleFile:
    """A file of a bundle, relative to the bundle folder (posix separators)."""

    path: str
    size: int
    md5: str


@dataclass(frozen=True)
class Pointer:
    """What a committed ``<file>.dvc`` says: which bytes the file must have."""

    path: str  # relative to the bundle folder
    md5: str
    size: int | None


def _quiet_dvc() -> None:
    # DVC logs progress and hints to stdout; a library must not print.
    log = logging.getLogger("dvc")
    for h in list(log.handlers):
        log.removeHandler(h)
    log.addHandler(logging.NullHandler())
    log.setLevel(logging.WARNING)
    log.propagate = False
    from dvc.ui import ui

    ui.error_console.quiet = True  # `dvc add` draws a "Checking graph" spinner there


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

    @contextmanager
    def _repo(self) -> Iterator[Any]:
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

    def track(self, paths: list[str]) -> None:
        """``dvc add`` each path (relative to the repo root), writing its ``.dvc`` pointer."""
        if not paths:
            return
        with self._repo() as repo:
            try:
                # Absolute paths: DVC resolves from the cwd. relink=False: the working-tree file
                # is already the right bytes; DVC would otherwise copy it back from the cache.
                repo.add([str(self.root / p) for p in paths], relink=False)
            except Exception as e:
                raise StorageError(f"dvc add failed: {e}", "check free disk space in the DVC cache") from None

    def upload(self, paths: list[str]) -> int:
        """Push the bytes behind these tracked paths to the default remote; raise unless all
        of them are there afterwards. Returns how many objects were transferred."""
        if not paths:
            return 0
        with self._repo() as repo:
            try:
                return int(repo.push([str(self.root / (p + POINTER_SUFFIX)) for p in paths]) or 0)
            except Exception as e:
                raise StorageError(
                    f"upload to the DVC remote failed: {_first_line(e)}",
                    "check the remote (`dvc remote list`), its credentials and network; nothing was tagged",
                ) from None

    def fetch_verified(
        self,
        rev: str,
        items: list[tuple[str, Pointer, Path]],
        progress: Progress | None = None,
    ) -> None:
        """Stream each (repo path at ``rev``, its pointer, destination) from the DVC cache or
        remote into its destination, hashing as it goes; raise DigestMismatch on any
        difference (the destination is then removed)."""
        _dvc_env()
        from dvc.api import DVCFileSystem

        _quiet_dvc()
        try:
            fs = DVCFileSystem(str(self.root), rev=rev)
        except Exception as e:
            raise StorageError(f"cannot read revision {rev[:12]} with DVC: {_first_line(e)}") from None
        try:
            for repo_path, pointer, dest in items:
                try:
                    src = fs.open(repo_path, "rb")
                except FileNotFoundError:
                    raise StorageError(
                        f"{repo_path}: bytes {pointer.md5} are in neither the DVC cache nor the remote",
                        "the upload never finished or the remote was cleaned; re-register the bundle",
                    ) from None
                except Exception as e:
                    raise StorageError(
                        f"{repo_path}: cannot read from the DVC remote: {_first_line(e)}"
                    ) from None
                with src:
                    copy_verified(src, dest, pointer, label=pointer.path, progress=progress)
        finally:
            fs.close() if hasattr(fs, "close") else None

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


@dataclass(frozen=True)
class RemovedObjects:
    """The md5 objects that :meth:`DvcStore.remove_objects` actually deleted, per place."""

    remote: list[str] = field(default_factory=list)
    cache: list[str] = field(default_factory=list)


def _copy_hashing(
    read: Callable[[int], bytes], out: IO[bytes], label: str, total: int, progress: Progress | None
) -> tuple[str, int]:
    """Copy chunk by chunk from ``read`` to ``out``, hashing on the way: (md5, bytes copied)."""
    h = hashlib.md5(usedforsecurity=False)
    done = 0
    while chunk := read(CHUNK):
        h.update(chunk)
        out.write(chunk)
        done += len(chunk)
        if progress:
            progress(label, done, total)
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
        shutil.copymode(src, dst)
        result.append(BundleFile(rel, done, md5))
    return result


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
