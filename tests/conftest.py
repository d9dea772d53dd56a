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
from gitreg.testing.server import ServeProcess, start_serve

# -- markers: what a test needs, derived from what it uses (registered in pyproject.toml) ----------
S3_FIXTURES = {"moto_s3", "private_moto"}
TORCH_FIXTURES = {"make_bundle"}  # writes TorchScript bundles
# A module needs torch when it imports it or a harness module that builds torch models.
TORCH_IMPORTS = (
    "import torch",
    "gitreg.testing.bundles",
    "gitreg.testing.payloads",
    "gitreg.testing.lifecycle",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    sources: dict[Path, str] = {}
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        path = Path(item.fspath)
        if path not in sources:
            sources[path] = path.read_text()
        if names & S3_FIXTURES:
            item.add_marker(pytest.mark.s3)
        if names & TORCH_FIXTURES or any(text in sources[path] for text in TORCH_IMPORTS):
            item.add_marker(pytest.mark.torch)


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


@pytest.fixture
def private_moto(tmp_path: Path) -> Iterator[MotoServer]:
    """A moto_server of the test's own, to stop and start again on the same port."""
    with MotoServer(log=tmp_path / "moto.log") as moto:
        yield moto


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    """Start real `gitreg serve` processes (one thread, 20 s graceful drain); all killed afterwards."""
    started: list[ServeProcess] = []

    def start(
        remote: Path, *args: str, env: dict[str, str] | None = None, name: str = "a", ready: bool = True
    ) -> ServeProcess:
        server = start_serve(
            remote, "--threads", "1", "--graceful", "20", *args,
            cache=tmp_path / f"cache-{name}", log=tmp_path / f"serve-{name}.log", env=env, ready=False,
        )  # fmt: skip
        started.append(server)
        if ready:
            server.wait_ready()
        return server

    try:
        yield start
    finally:
        for s in started:
            s.kill()
