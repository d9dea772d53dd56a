"""gitreg: a Git-native model registry.

``from gitreg import Registry`` is the Python API; ``gitreg.load("policy@production", repo=URL)``
loads a model into your process and ``gitreg.resolve(...)`` says what a reference names; the
errors live in :mod:`gitreg.errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitreg.errors import (
    BundleError,
    DigestMismatch,
    DirtyWorkingTree,
    GitError,
    GitregError,
    InvalidModelName,
    InvalidVersionName,
    ManifestError,
    MetadataError,
    ModelNotFound,
    NotARegistry,
    OutputExists,
    RegistryLocked,
    StorageError,
    VersionExists,
    VersionNotFound,
)

if TYPE_CHECKING:
    from pathlib import Path

    from gitreg.loading import LoadedPolicy
    from gitreg.refs import Resolution
    from gitreg.registry import Registry

from gitreg.version import __version__

__all__ = [
    "BundleError",
    "DigestMismatch",
    "DirtyWorkingTree",
    "GitError",
    "GitregError",
    "InvalidModelName",
    "InvalidVersionName",
    "ManifestError",
    "MetadataError",
    "ModelNotFound",
    "NotARegistry",
    "OutputExists",
    "Registry",
    "RegistryLocked",
    "StorageError",
    "VersionExists",
    "VersionNotFound",
    "__version__",
    "load",
    "resolve",
]


def __getattr__(name: str) -> Any:
    # Registry pulls in pydantic models; keep `import gitreg` cheap for the validation child.
    if name == "Registry":
        from gitreg.registry import Registry

        return Registry
    raise AttributeError(name)


def _open(repo: str | None, path: Path | str | None, branch: str | None) -> Registry:
    from gitreg.registry import Registry

    if repo is not None and path is not None:
        raise ValueError("give repo (a Git remote, read through a cached mirror) or path (a clone), not both")
    if repo is not None:
        return Registry.from_remote(repo, branch=branch)
    return Registry(path if path is not None else ".", branch=branch)


def load(
    reference: str,
    repo: str | None = None,
    *,
    path: Path | str | None = None,
    branch: str | None = None,
    at: str | None = None,
    cache_dir: Path | str | None = None,
    require_signed: bool = False,
    allow_architectures: tuple[str, ...] = (),
    smoke_test: bool = True,
    threads: int | None = None,
) -> LoadedPolicy:
    """Load ``reference`` (``policy@production``, ``policy@v2025-07-06--18h51`` …) from the
    registry at the Git remote ``repo`` (a URL or a path; no clone: a cached bare mirror), or
    the clone at ``path`` (default: the current directory). It goes through the deploy agent's
    own checks: models.yaml's load policy, every md5, a sandboxed smoke load. Verified bundles
    are cached by content, so loading them again is instant. Call the result on a batch."""
    reg = _open(repo, path, branch)
    return reg.load(
        reference, at=at, cache_dir=cache_dir, require_signed=require_signed,
        allow_architectures=allow_architectures, smoke_test=smoke_test, threads=threads,
    )  # fmt: skip


def resolve(
    reference: str,
    repo: str | None = None,
    *,
    path: Path | str | None = None,
    branch: str | None = None,
    at: str | None = None,
) -> Resolution:
    """What ``reference`` names (version, commit, files, status, the models.yaml commit that
    set it), without loading anything: what `gitreg resolve --json` prints."""
    return _open(repo, path, branch).resolve(reference, at)
