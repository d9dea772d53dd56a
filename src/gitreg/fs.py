"""File-system primitives every other module uses: one atomic write, one empty-folder cleanup."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never half: a temp
    file beside it (``.NAME.*.tmp``), fsynced, renamed over it. The file keeps its mode; a new one
    gets ``mode`` (default 0o644). A failure removes the temp file and raises."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644 if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_empty_parents(folder: Path, stop: Path) -> None:
    """Remove ``folder`` and its parents while they are empty, up to (not including) ``stop``."""
    with contextlib.suppress(OSError):
        while folder != stop and folder.is_relative_to(stop) and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent


def user_cache_dir() -> Path:
    """gitreg's folder in the user cache (the ``--repo`` mirrors, ``gitreg.load``'s bundles,
    serve's default): ``$GITREG_CACHE_DIR``, else ``$XDG_CACHE_HOME/gitreg``, else
    ``~/.cache/gitreg``."""
    explicit = os.environ.get("GITREG_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gitreg"
