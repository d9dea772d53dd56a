"""Bundle files (no DVC needed): scan a bundle folder, read pointers, copy while hashing.

A bundle is a folder as a trainer exports it (``policy.pt`` or ``policy.safetensors`` +
``metadata.json`` + maybe more). Reads stream: bytes are hashed while they are copied, in
fixed-size chunks (the md5 in a second thread), so memory stays flat in the bundle's size.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from gitreg.errors import BundleError, DigestMismatch, StorageError, writing

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
    # (st_ino, st_mtime_ns) of the copy gitreg hashed: lets `track` hand the md5 to DVC only
    # while the file is still exactly the one that was hashed.
    stat: tuple[int, int] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Pointer:
    """What a committed ``<file>.dvc`` says: which bytes the file must have."""

    path: str  # relative to the bundle folder
    md5: str
    size: int | None


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


# The exact text DVC writes for one file: read without a YAML parser (1 ms a pointer, which
# listing thousands of versions would pay once each). A plain name that YAML would read as
# something else than that string (true, null, 1.5, "a: b") is not taken by this path.
_CANONICAL_POINTER = re.compile(
    rb"outs:\n- md5: ([0-9a-f]{32})\n  size: ([1-9][0-9]{0,17}|0)\n  hash: md5\n"
    rb"  path: ([A-Za-z_][A-Za-z0-9_.-]{0,199})\n"
)
_YAML_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n"}


def parse_pointer(raw: bytes, source: str) -> Pointer:
    """Parse a ``.dvc`` file (untrusted: safe YAML, one plain output, a path in its folder)."""
    canonical = _CANONICAL_POINTER.fullmatch(raw)
    # An md5 of digits (and at most an "e") reads as a number in YAML: refused there, so here.
    if (
        canonical is not None
        and canonical[3].decode().lower() not in _YAML_WORDS
        and any(c in b"abcdf" for c in canonical[1])
    ):
        return Pointer(path=canonical[3].decode(), md5=canonical[1].decode(), size=int(canonical[2]))
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


def copy_hashing(
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
            raise StorageError(f"{label}: read failed mid-way: {first_line(e)}") from None

    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(dest, "wb") as out:
            actual, done = copy_hashing(read, out, label, pointer.size or 0, progress)
        if actual != pointer.md5 or (pointer.size is not None and done != pointer.size):
            raise DigestMismatch(label, pointer.md5, actual)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def copy_bundle(
    src_dir: Path,
    files: list[str],
    dest_dir: Path,
    progress: Progress | None = None,
    *,
    shown_as: str | None = None,
) -> list[BundleFile]:
    """Copy bundle files into the working tree, hashing them on the way. A write that fails
    (a full disk …) raises DiskError naming the file as ``shown_as/REL`` (default: its path)."""
    result = []
    for rel in files:
        src = src_dir / rel
        dst = dest_dir / rel
        with writing(f"{shown_as}/{rel}" if shown_as else str(dst)):
            dst.parent.mkdir(parents=True, exist_ok=True)
            with open(src, "rb") as fi, open(dst, "wb") as fo:
                md5, done = copy_hashing(fi.read, fo, rel, src.stat().st_size, progress)
                fo.flush()
        shutil.copymode(src, dst)
        st = os.stat(dst)  # after the last write: its mtime is that of the hashed bytes
        result.append(BundleFile(rel, done, md5, stat=(st.st_ino, st.st_mtime_ns)))
    return result


def first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
