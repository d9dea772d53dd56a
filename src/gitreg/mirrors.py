"""Registries read without a clone: ``--repo URL`` opens a cached bare mirror of the remote.

One mirror per URL (its credentials left out of the key) under the user cache folder
(``$GITREG_CACHE_DIR``, else ``$XDG_CACHE_HOME/gitreg``, else ``~/.cache/gitreg``), in
``mirrors/``; concurrent gitreg processes share it under a file lock. The first use clones it
with a blob filter (``--filter=blob:none``, where the server allows it): tags, notes and trees
come over, a blob only when a command reads it (models.yaml, a note, a pointer file), and the
bundle bytes never — ``pull`` reads them straight from the DVC remote. Every later use fetches.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from gitreg.context import exclusive_lock
from gitreg.fs import user_cache_dir
from gitreg.gitrepo import GitRepo
from gitreg.gitrepo.credentials import split_url

if TYPE_CHECKING:
    from gitreg.gitrepo.transport import ProgressCallback


def mirror_path(url: str) -> Path:
    """Where the mirror of ``url`` lives: keyed by the URL without its password."""
    clean, _ = split_url(url)
    key = hashlib.sha256(clean.encode()).hexdigest()[:16]
    name = clean.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")[:40] or "repo"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return user_cache_dir() / "mirrors" / f"{safe}-{key}.git"


def open_mirror(url: str, *, progress: ProgressCallback | None = None) -> Path:
    """The up-to-date bare mirror of ``url``: cloned the first time (blob-filtered), else fetched."""
    path = mirror_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(path.with_name(path.name + ".lock")):
        if (path / "HEAD").exists():
            GitRepo(path).fetch_mirror(progress=progress)
        else:
            GitRepo.mirror(url, path, progress=progress, blob_filter=True)
    return path
