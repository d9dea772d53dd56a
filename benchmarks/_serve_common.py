"""The `gitreg serve` benchmarks' side of the harness: ``gitreg.testing`` builds the registry
(bare Git remote, folder DVC remote, small TorchScript MLPs), runs the real `gitreg serve`
(its own process group, killed afterwards) and the bounded load; this module only adds the
benchmark conventions (log level, no fallback, bounds of an hour) and the latency summaries.

Registry changes are made in this process through gitreg's Python API (as the e2e tests do);
the isolated environment is exported into ``os.environ`` first, so every git call (ours and
the server's) sees the benchmark's own identity and nothing of the user's.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import venv_tool
from gitreg.testing import load, server
from gitreg.testing.bundles import ROW
from gitreg.testing.load import Sample
from gitreg.testing.net import free_port
from gitreg.testing.net import http_request as request
from gitreg.testing.repos import RegistryWithRemote as Reg
from gitreg.testing.repos import registry_with_versions as build_registry
from gitreg.testing.server import NO_FALLBACK, wait_ready
from gitreg.testing.server import ServeProcess as Proc
from gitreg.testing.server import wait_for as wait_until

__all__ = [
    "ROW", "Load", "Proc", "Reg", "Sample", "build_registry", "export_env", "free_port",
    "latency_summary", "load_note", "loadavg", "percentile", "request", "start_process", "start_serve",
    "wait_ready", "wait_until",
]  # fmt: skip
LOADED = 1.0  # 1-minute load average per core above which figures are flagged as from a loaded machine


def export_env(env: dict[str, str]) -> None:
    """Make this process (the Python API's git calls) use the isolated environment."""
    for k in list(os.environ):
        if k not in env:
            del os.environ[k]
    os.environ.update(env)


def start_process(
    cmd: Sequence[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Proc:
    """Any server command that takes ``--port`` (the bare FastAPI floor), as a ``Proc``."""
    port = int(cmd[list(cmd).index("--port") + 1])
    return Proc(server.start_process(cmd, log, env=env, cwd=cwd), port, log)


def start_serve(
    work: Path, remote: Path, *args: str, name: str = "a", env: dict[str, str] | None = None
) -> Proc:
    """`gitreg serve` with cache and log under ``work``, warnings only, no fallback; ready."""
    return server.start_serve(
        remote, "--log-level", "warning", *NO_FALLBACK, *args,
        cache=work / f"cache-{name}", log=work / f"serve-{name}.log", env=env, command=[venv_tool("gitreg")],
    )  # fmt: skip


class Load(load.Load):
    """The harness's load generator, bounded for a benchmark (an hour, 10^8 requests)."""

    def __init__(self, url: str, clients: int = 8) -> None:
        super().__init__(url, clients=clients, max_requests=10**8, max_seconds=3600.0)


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
