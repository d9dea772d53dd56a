"""Shared helpers for the `gitreg serve` benchmarks: a registry with a bare Git remote and a
folder DVC remote holding small TorchScript MLPs, a real `gitreg serve` subprocess (its own
process group, killed afterwards), and client threads with persistent ``http.client``
connections that record every request.

Registry changes are made in this process through gitreg's Python API (as the e2e tests do);
``isolated_env``'s HOME / GIT_CONFIG_GLOBAL are exported into ``os.environ`` first, so every
git call (ours and the server's) sees the benchmark's own identity and nothing of the user's.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from _common import venv_tool

T = TypeVar("T")
ROW = [[0.5, -1.0, 2.0, 0.25]]
NO_FALLBACK = ("--max-p99-ms", "600000", "--max-error-rate", "1.0")  # benchmarks judge nothing
LOADED = 1.0  # 1-minute load average per core above which figures are flagged as from a loaded machine


def version_name(i: int) -> str:
    return f"v2025-07-{i + 1:02d}--10h00"


def export_env(env: dict[str, str]) -> None:
    """Make this process (the Python API's git calls) use the isolated environment."""
    for k in list(os.environ):
        if k not in env:
            del os.environ[k]
    os.environ.update(env)


def write_policy(path: Path, seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    torch.jit.script(net).save(str(path))


def write_bundle(folder: Path, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_policy(folder / "policy.pt", seed)
    meta = {
        "algo": "DQN",
        "framework": "torchscript",
        "created_at": "2025-07-06T18:51:23+00:00",
        "metrics": {"reward": 100.0 + seed},
        "hyperparameters": {"lr": 0.001, "layers": [16]},
        "input_shape": [4],
    }
    (folder / "metadata.json").write_text(json.dumps(meta))
    return folder


@dataclass
class Reg:
    """A registry repo (``registry``) whose ``origin`` is the bare ``remote``."""

    registry: Any
    repo: Path
    remote: Path
    versions: list[str]
    bundles: dict[str, Path]

    def promote(self, version: str, *, push: bool = True) -> None:
        self.registry.promote(version, "production", direct=True, push=push, force=True)


def build_registry(work: Path, n_versions: int) -> Reg:
    """``n_versions`` registered (and pushed) versions; the first is promoted to production."""
    from gitreg.registry import Registry

    remote = work / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    dvc = work / "dvc-remote"
    dvc.mkdir()
    repo = work / "registry"
    Registry.init(repo, remote=str(dvc), ci="none")
    subprocess.run(["git", "remote", "add", "origin", str(remote)], cwd=repo, check=True)
    reg = Registry(repo)
    versions, bundles = [], {}
    for i in range(n_versions):
        v = version_name(i)
        b = write_bundle(work / "bundles" / v, seed=i + 1)
        reg.register(b, "policy", version=v, push=True)
        versions.append(v)
        bundles[v] = b
    out = Reg(reg, repo, remote, versions, bundles)
    out.promote(versions[0])
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    """A server subprocess in its own process group, with its log file."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


def start_process(
    cmd: Sequence[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Proc:
    port = int(cmd[list(cmd).index("--port") + 1])
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    return Proc(proc, port, log)


def start_serve(
    work: Path, remote: Path, *args: str, name: str = "a", env: dict[str, str] | None = None
) -> Proc:
    port = free_port()
    cmd = [
        venv_tool("gitreg"), "serve", "--repo", str(remote), "--port", str(port),
        "--cache", str(work / f"cache-{name}"), "--log-level", "warning", *NO_FALLBACK, *args,
    ]  # fmt: skip
    server = start_process(cmd, work / f"serve-{name}.log", env=env)
    wait_ready(server)
    return server


def request(
    url: str,
    method: str = "GET",
    path: str = "/",
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def wait_until(check: Callable[[], T], what: str, deadline_s: float, *procs: Proc, every: float = 0.05) -> T:
    end = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < end:
        for p in procs:
            if not p.alive():
                raise SystemExit(f"server exited ({p.proc.returncode}) while waiting for {what}:\n{p.tail()}")
        try:
            value = check()
        except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
            value, last = None, e
        if value:
            return value
        time.sleep(every)
    logs = "\n".join(f"--- {p.url} ---\n{p.tail()}" for p in procs)
    raise SystemExit(f"timed out after {deadline_s:g}s waiting for {what} (last: {last!r})\n{logs}")


def wait_ready(server: Proc, deadline_s: float = 180.0) -> None:
    wait_until(
        lambda: request(server.url, path="/ready")[0] == 200, f"{server.url}/ready", deadline_s, server
    )


# -- load ---------------------------------------------------------------------------------------
@dataclass
class Sample:
    start: float  # time.monotonic() when the request was sent
    seconds: float  # latency
    status: int  # HTTP status, -1 for a connection error
    version: str  # "" unless 200


@dataclass
class Load:
    """``clients`` threads, each with one persistent HTTP/1.1 connection, POSTing /predict
    back to back; every request is recorded (a broken connection is reopened and counted as failed)."""

    url: str
    clients: int = 8
    path: str = "/predict"
    inputs: Any = field(default_factory=lambda: ROW)
    samples: list[list[Sample]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        self.samples = [[] for _ in range(self.clients)]
        for i in range(self.clients):
            t = threading.Thread(target=self._run, args=(self.samples[i],), daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(60)

    def _run(self, out: list[Sample]) -> None:
        host, port = self.url.removeprefix("http://").split(":")
        body = json.dumps({"inputs": self.inputs}).encode()
        headers = {"Content-Type": "application/json"}
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            if conn is None:
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
            t0 = time.monotonic()
            try:
                conn.request("POST", self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                elapsed = time.monotonic() - t0
                version = json.loads(data)["version"] if r.status == 200 else ""
                out.append(Sample(t0, elapsed, r.status, version))
            except Exception:  # a refused or broken connection is a failed request too
                out.append(Sample(t0, time.monotonic() - t0, -1, ""))
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def all(self) -> list[Sample]:
        return [s for per in self.samples for s in per]

    def count(self) -> int:
        return sum(len(per) for per in self.samples)

    def last_versions(self) -> set[str]:
        return {per[-1].version for per in self.samples if per}


def percentile(xs: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not xs:
        return None
    s = sorted(xs)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return float(s[k])


def latency_summary(samples: Sequence[Sample], seconds: float | None = None) -> dict[str, Any]:
    ok = [s.seconds for s in samples if s.status == 200]
    p50, p99 = percentile(ok, 50), percentile(ok, 99)
    return {
        "requests": len(samples),
        "failed": sum(1 for s in samples if s.status != 200),
        "p50_ms": None if p50 is None else round(p50 * 1000, 3),
        "p99_ms": None if p99 is None else round(p99 * 1000, 3),
        "max_ms": round(max(ok) * 1000, 3) if ok else None,
        "seconds": None if seconds is None else round(seconds, 3),
        "rps": round(len(ok) / seconds, 1) if seconds else None,
    }


def load_note(loadavg: Sequence[float]) -> str:
    cpus = os.cpu_count() or 1
    one = loadavg[0]
    if one / cpus > LOADED:
        return f"NOTE: figures are from a loaded {cpus}-core machine (load average {one:.2f})"
    return f"{cpus}-core machine, load average {one:.2f}"


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return [0.0, 0.0, 0.0]
