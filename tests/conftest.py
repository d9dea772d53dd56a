"""Shared fixtures, thin wrappers over the harness in ``gitreg.testing``: real git with a bare
remote, real DVC remotes (a folder; S3 via moto_server on 127.0.0.1), real TorchScript bundles,
an isolated HOME and a fixed clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gitreg.testing import env
from gitreg.testing.bundles import write_bundle
from gitreg.testing.clock import FixedClock
from gitreg.testing.repos import init_bare, init_registry
from gitreg.testing.s3 import MotoServer


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME, git identity and config, no system git config, DVC quiet."""
    home = tmp_path_factory.mktemp("home")
    for key, value in env.make_home(home).items():
        monkeypatch.setenv(key, value)
    for key in env.UNSET:  # pytest-xdist workers export COLUMNS=80/LINES=24: the CLI would wrap to them
        monkeypatch.delenv(key, raising=False)
    return home


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def bare_remote(tmp_path: Path) -> Path:
    return init_bare(tmp_path / "remote.git")


@pytest.fixture
def dvc_remote(tmp_path: Path) -> Path:
    path = tmp_path / "dvc-remote"
    path.mkdir()
    return path


@pytest.fixture
def repo_dir(tmp_path: Path, bare_remote: Path, dvc_remote: Path) -> Path:
    """An initialized registry repo (folder DVC remote) with `origin` = a bare repo."""
    return init_registry(tmp_path / "registry", remote=dvc_remote, origin=bare_remote)


@pytest.fixture
def registry(repo_dir: Path, clock: FixedClock) -> Any:
    from gitreg.registry import Registry

    return Registry(repo_dir, clock=clock)


@pytest.fixture
def make_bundle(tmp_path: Path) -> Callable[..., Path]:
    counter = {"n": 0}

    def make(seed: int = 0, **kw: Any) -> Path:
        counter["n"] += 1
        return write_bundle(tmp_path / "bundles" / f"b{counter['n']}", seed, **kw)

    return make


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoServer]:
    with MotoServer() as moto:
        yield moto


# -- transitional: names test modules still import from here (removed once they import the harness)
from gitreg.testing.bundles import write_policy  # noqa: E402
from gitreg.testing.cli import GITREG, run_cli  # noqa: E402
from gitreg.testing.net import free_port, wait_for_port  # noqa: E402
from gitreg.testing.repos import git  # noqa: E402


def module_git_env(base: Path) -> Any:
    return env.isolated_home(base / "home")


__all__ = [
    "GITREG",
    "FixedClock",
    "free_port",
    "git",
    "run_cli",
    "wait_for_port",
    "write_bundle",
    "write_policy",
]
