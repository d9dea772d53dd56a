"""Shared fixtures: real git with a bare remote, real DVC remotes (a folder; S3 via moto_server
on 127.0.0.1), real TorchScript bundles, an isolated HOME and a fixed clock."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

GITREG = str(Path(sys.executable).parent / "gitreg")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME, git identity and config, no system git config, DVC quiet."""
    home = tmp_path_factory.mktemp("home")
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n"
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
        '[protocol "file"]\n\tallow = always\n'
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", str(home / ".dvc-site-cache"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("GITREG_DEBUG", raising=False)
    # pytest-xdist workers export COLUMNS=80/LINES=24; the CLI would wrap its tables to them.
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    return home


@contextmanager
def module_git_env(base: Path) -> Iterator[None]:
    """For module-scoped fixtures, which cannot use ``isolated_env``: a HOME with a git identity
    under ``base``, no system git config, DVC quiet; undone on exit."""
    home = base / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        mp.setenv("DVC_NO_ANALYTICS", "1")
        mp.setenv("DVC_SITE_CACHE_DIR", str(home / ".dvc-site-cache"))
        yield


class FixedClock:
    """An injectable clock: returns ``now`` and moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2025, 7, 6, 18, 51, 23, tzinfo=UTC))


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def bare_remote(tmp_path: Path) -> Path:
    path = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


@pytest.fixture
def dvc_remote(tmp_path: Path) -> Path:
    path = tmp_path / "dvc-remote"
    path.mkdir()
    return path


@pytest.fixture
def repo_dir(tmp_path: Path, bare_remote: Path, dvc_remote: Path) -> Path:
    """An initialized registry repo (folder DVC remote) with `origin` = a bare repo."""
    from gitreg.registry import Registry

    path = tmp_path / "registry"
    Registry.init(path, remote=str(dvc_remote), ci="github")
    git(path, "remote", "add", "origin", str(bare_remote))
    return path


@pytest.fixture
def registry(repo_dir: Path, clock: FixedClock) -> Any:
    from gitreg.registry import Registry

    return Registry(repo_dir, clock=clock)


# -- bundles --------------------------------------------------------------------------------------
def write_policy(path: Path, seed: int = 0, in_dim: int = 4, out_dim: int = 2) -> None:
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(in_dim, 16), torch.nn.ReLU(), torch.nn.Linear(16, out_dim))
    torch.jit.script(net).save(str(path))


def write_bundle(
    folder: Path,
    seed: int = 0,
    *,
    metadata: dict[str, Any] | None = None,
    extra_files: dict[str, bytes] | None = None,
    policy: bytes | None = None,
) -> Path:
    """A trainer-shaped bundle: TorchScript policy.pt + metadata.json (+ extra files)."""
    folder.mkdir(parents=True, exist_ok=True)
    if policy is None:
        write_policy(folder / "policy.pt", seed)
    else:
        (folder / "policy.pt").write_bytes(policy)
    meta = {
        "algo": "DQN",
        "framework": "torchscript",
        "created_at": "2025-07-06T18:51:23+00:00",
        "metrics": {"reward": 100.0 + seed, "loss": 0.5 - seed / 100, "sharpe": 1.0 + seed / 10},
        "hyperparameters": {"lr": 0.001 * (seed + 1), "gamma": 0.99, "layers": [16]},
        "input_shape": [4],
    }
    if metadata is not None:
        meta = metadata
    (folder / "metadata.json").write_text(json.dumps(meta))
    for rel, data in (extra_files or {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


@pytest.fixture
def make_bundle(tmp_path: Path) -> Callable[..., Path]:
    counter = {"n": 0}

    def make(seed: int = 0, **kw: Any) -> Path:
        counter["n"] += 1
        return write_bundle(tmp_path / "bundles" / f"b{counter['n']}", seed, **kw)

    return make


# -- the CLI as a user runs it --------------------------------------------------------------------
def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, check: bool | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [GITREG, *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    if check is True and proc.returncode != 0:
        raise AssertionError(f"gitreg {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


# -- S3 via moto_server -----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {deadline_s} s")


class MotoS3:
    def __init__(self, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.proc = proc
        self.endpoint = f"http://127.0.0.1:{port}"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield MotoS3(port, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
