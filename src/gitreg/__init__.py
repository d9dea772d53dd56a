"""gitreg: a Git-native model registry.

``from gitreg import Registry`` is the Python API; the errors live in :mod:`gitreg.errors`.
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
]


def __getattr__(name: str) -> Any:
    # Registry pulls in pydantic models; keep `import gitreg` cheap for the validation child.
    if name == "Registry":
        from gitreg.registry import Registry

        return Registry
    raise AttributeError(name)
