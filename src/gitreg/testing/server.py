"""A real ``gitreg serve`` in a subprocess: its own process group (stopping it stops its
children), its output in a log file, readiness polled on ``/ready``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gitreg.testing.bundles import ROW
from gitreg.testing.cli import gitreg_command
from gitreg.testing.net import LOOPBACK, TRANSIENT, free_port, http_request, wait_until

T = TypeVar("T")
# Flags that turn off the agent's latency/error fallback: load tests and benchmarks judge nothing.
NO_FALLBACK = ("--max-p99-ms", "600000", "--max-error-rate", "1.0")


def start_process(
    cmd: Sequence[str], log: Path, *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a new session (its own process group), stdout and stderr to ``log``;
    ``env`` updates ``os.environ``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )


def stop_process(proc: subprocess.Popen[bytes], *, graceful: float = 0.0) -> int | None:
    """Stop ``proc``'s process group: SIGTERM and up to ``graceful`` s to exit, then SIGKILL."""
    if proc.poll() is None and graceful > 0:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(graceful)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass
    return proc.returncode


@dataclass
class ServeProcess:
    """A running server on 127.0.0.1:``port`` with its log. ``get``/``predict`` return httpx
    responses (httpx is a dev dependency, imported on use); the rest is standard library."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, n: int = 40) -> str:
        """The last ``n`` lines of the log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def describe(self) -> str:
        state = "running" if self.alive() else f"exited ({self.proc.returncode})"
        return f"--- {self.url}: {state}, log {self.log} ---\n{self.tail()}"

    def request(self, method: str = "GET", path: str = "/", body: Any = None, **kw: Any) -> tuple[int, bytes]:
        return http_request(self.url, method, path, body, **kw)

    def get(self, path: str) -> Any:
        import httpx

        return httpx.get(self.url + path, timeout=30)

    def predict(self, inputs: Any = ROW, **kw: Any) -> Any:
        import httpx

        return httpx.post(self.url + "/predict", json={"inputs": inputs}, timeout=60, **kw)

    def health(self) -> dict[str, Any]:
        return dict(json.loads(self.request(path="/health")[1]))

    def model(self, name: str = "policy") -> dict[str, Any]:
        return dict(self.health()["models"][name])

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample on /metrics (0 when absent)."""
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        prefix = f"{name}{{{want}}} " if labels else f"{name} "
        for line in self.request(path="/metrics")[1].decode().splitlines():
            if line.startswith(prefix):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def wait_ready(self, deadline_s: float = 180.0) -> None:
        """Wait until /ready answers 200; fail at once if the server exits."""
        wait_until(
            lambda: self.request(path="/ready", timeout=5)[0] == 200,
            deadline_s,
            what=f"{self.url}/ready",
            every=0.1,
            watch=[self],
        )

    def stop(self, graceful: float = 30.0) -> int | None:
        """SIGTERM (a graceful drain of up to ``graceful`` s), then SIGKILL; the exit code."""
        return stop_process(self.proc, graceful=graceful)

    def kill(self) -> None:
        stop_process(self.proc)

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def start_serve(
    remote: Path | str,
    *args: str,
    cache: Path,
    log: Path,
    port: int | None = None,
    env: dict[str, str] | None = None,
    command: Sequence[str] | None = None,
    ready: bool = True,
    ready_deadline: float = 180.0,
) -> ServeProcess:
    """``gitreg serve --repo REMOTE --port PORT --cache CACHE ARGS`` (``command`` replaces
    ``gitreg``); waits for /ready unless ``ready`` is false. Stop it with ``stop()``/``kill()``."""
    port = free_port() if port is None else port
    cmd = [*(command or gitreg_command()), "serve", "--repo", str(remote), "--port", str(port)]
    cmd += ["--cache", str(cache), *args]
    server = ServeProcess(start_process(cmd, log, env=env), port, log)
    if ready:
        try:
            server.wait_ready(ready_deadline)
        except BaseException:
            server.kill()
            raise
    return server


def http_errors() -> tuple[type[BaseException], ...]:
    """What a poll of a server shrugs off: ``net.TRANSIENT`` and, when installed, httpx's errors."""
    try:
        import httpx
    except ImportError:
        return TRANSIENT
    return (*TRANSIENT, httpx.HTTPError)


def wait_for(check: Callable[[], T], what: str, deadline_s: float = 120.0, *servers: ServeProcess) -> T:
    """``wait_until`` in the tests' calling convention: poll ``check`` every 0.1 s until it returns
    something truthy; fail at once if one of ``servers`` exits, naming what each logged."""
    return wait_until(check, deadline_s, what=what, every=0.1, watch=servers, errors=http_errors())


def wait_ready(*servers: ServeProcess, deadline_s: float = 180.0) -> None:
    """Wait until every one of ``servers`` answers /ready with 200."""
    for s in servers:
        s.wait_ready(deadline_s)
