"""Git repositories for tests, benchmarks and the demo: plain ``git`` calls, bare remotes, and
registry repositories whose ``origin`` is a bare remote (DVC remote: a folder, or any URL)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any


def git(cwd: Path, *args: str) -> str:
    """``git ARGS`` in ``cwd``; its stdout, stripped. Raises ``CalledProcessError`` on failure."""
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def init_bare(path: Path) -> Path:
    """A bare repository at ``path`` (what GitHub or GitLab would be)."""
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def init_registry(path: Path, *, remote: str | Path, origin: Path | None = None, ci: str = "github") -> Path:
    """``gitreg init`` at ``path`` with the DVC ``remote`` (a folder is created if it is a path
    that does not exist), and ``origin`` = the bare repository ``origin`` when given."""
    from gitreg.registry import Registry

    if isinstance(remote, Path):
        remote.mkdir(parents=True, exist_ok=True)
    Registry.init(path, remote=str(remote), ci=ci)
    if origin is not None:
        git(path, "remote", "add", "origin", str(origin))
    return path


def register_pushed(registry: Any, bundle: Path, version: str, model: str = "policy") -> str:
    """Register ``bundle`` as ``version`` of ``model`` and push it, as a user would; the version."""
    return str(registry.register(bundle, model, version=version, push=True).version)


def promote_pushed(registry: Any, version: str, canary: float | None = None) -> None:
    """A --direct, forced, pushed promotion: to production, or to canary with ``canary`` percent."""
    if canary is None:
        registry.promote(version, "production", direct=True, push=True, force=True)
    else:
        registry.promote(version, None, canary=canary, direct=True, push=True, force=True)


def branch_head(bare: Path, branch: str = "main") -> str:
    """The commit ``branch`` points at in the (bare) repository ``bare``."""
    return git(bare, "rev-parse", f"refs/heads/{branch}")


def version_name(i: int) -> str:
    """The ``i``-th of a series of version names, one a day from 2025-07-01."""
    return f"v2025-07-{i + 1:02d}--10h00"


@dataclass
class RegistryWithRemote:
    """A registry repo (``registry``, the Python API) whose ``origin`` is the bare ``remote``."""

    registry: Any
    repo: Path
    remote: Path
    versions: list[str]
    bundles: dict[str, Path]

    def promote(self, version: str, *, push: bool = True) -> None:
        """A --direct, forced promotion to production (pushed unless told otherwise)."""
        self.registry.promote(version, "production", direct=True, push=push, force=True)


def registry_with_versions(
    work: Path,
    n_versions: int,
    *,
    model: str = "policy",
    ci: str = "none",
    promote_first: bool = True,
    clock: Callable[[], datetime] | None = None,
) -> RegistryWithRemote:
    """Under ``work``: a bare remote, a folder DVC remote and a registry with ``n_versions``
    registered (and pushed) TorchScript versions of ``model``; the first promoted to production."""
    from gitreg.registry import Registry
    from gitreg.testing.bundles import write_bundle

    remote = init_bare(work / "remote.git")
    repo = init_registry(work / "registry", remote=work / "dvc-remote", origin=remote, ci=ci)
    reg = Registry(repo) if clock is None else Registry(repo, clock=clock)
    versions: list[str] = []
    bundles: dict[str, Path] = {}
    for i in range(n_versions):
        v = version_name(i)
        bundles[v] = write_bundle(work / "bundles" / v, i + 1)
        register_pushed(reg, bundles[v], v, model)
        versions.append(v)
    out = RegistryWithRemote(reg, repo, remote, versions, bundles)
    if promote_first and versions:
        out.promote(versions[0])
    return out
