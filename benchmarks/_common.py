"""Shared helpers for the gitreg benchmarks: the harness's isolated environment (gitreg.testing.env)
with benchmark settings, timed subprocesses with their own peak RSS, medians, machine info, and
the table + JSON report.

Not part of the test suite. Every benchmark runs its commands as real subprocesses (the installed
console scripts), measures a floor in the same run, and reports the ratio to that floor.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gitreg.testing.env import FOREIGN_PREFIXES, clean_environ

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
VENV_BIN = Path(sys.executable).parent


def venv_tool(name: str) -> str:
    """A console script of this interpreter's environment (gitreg, gto, moto_server, …)."""
    path = VENV_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found next to {sys.executable} nor on PATH")
    return found


@dataclass
class Timed:
    """One finished (or killed) subprocess: wall seconds, its own peak RSS, its output."""

    seconds: float
    max_rss_kib: int
    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    written_bytes: int = 0  # ru_oublock * 512: bytes this child (and waited-for descendants) wrote to files

    def check(self, what: str) -> Timed:
        if self.timed_out:
            raise SystemExit(f"{what}: timed out after {self.seconds:.1f}s")
        if self.returncode != 0:
            tail = self.stderr.decode(errors="replace")[-2000:]
            raise SystemExit(f"{what}: exit code {self.returncode}\n{tail}")
        return self


def run_timed(
    cmd: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    stdin: bytes | None = None,
) -> Timed:
    """Run ``cmd`` and return its wall time and the peak RSS of that child (and of the
    descendants it waited for), read from ``os.wait4`` — not the running max over every child
    this process ever had, which ``getrusage(RUSAGE_CHILDREN)`` would give.

    stdout/stderr go to temporary files (no pipe to drain), so the timing is the command's own.
    On ``timeout`` the whole process group is killed and ``timed_out`` is set.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as inp:
        if stdin is not None:
            inp.write(stdin)
            inp.seek(0)
        killed = threading.Event()
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=inp if stdin is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )

        def _kill() -> None:
            killed.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, _kill) if timeout else None
        if timer is not None:
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            if timer is not None:
                timer.cancel()
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
        out.seek(0)
        err.seek(0)
        return Timed(
            seconds=elapsed,
            max_rss_kib=int(usage.ru_maxrss),  # KiB on Linux
            returncode=proc.returncode,
            stdout=out.read(),
            stderr=err.read(),
            timed_out=killed.is_set(),
            written_bytes=int(usage.ru_oublock) * 512,
        )


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


@contextmanager
def isolated_env(prefix: str, keep: bool = False) -> Iterator[tuple[Path, dict[str, str]]]:
    """A temp folder with the harness's isolated HOME (its own git identity, no system config,
    quiet DVC; gc off) and, for stable timings, no virtualenv or Python variables, the C locale
    and 200 columns; yields (workdir, env) and removes the folder afterwards unless ``keep``."""
    work = Path(tempfile.mkdtemp(prefix=f"gitreg-bench-{prefix}-"))
    env = clean_environ(
        work / "home",
        drop=(*FOREIGN_PREFIXES, "VIRTUAL_ENV", "PYTHON"),
        name="Bench User",
        email="bench@example.com",
        extra="[gc]\n\tauto = 0\n",
    )
    env.update(LC_ALL="C", COLUMNS="200")
    try:
        yield work, env
    finally:
        if keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def machine_info() -> dict[str, Any]:
    git = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    src = BENCH_DIR.parent
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, check=False)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "src"], cwd=src, capture_output=True, text=True, check=False
    )
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "gitreg_commit": head.stdout.strip() or None,
        "gitreg_src_changed_files": len(dirty.stdout.splitlines()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in load],
        "git": git,
    }


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A rich table when rich is importable, else plain aligned text."""
    cells = [[str(c) for c in row] for row in rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        print(f"\n{title}")
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
        for r in cells:
            print("  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)))
        return
    console = Console(width=max(120, int(os.environ.get("COLUMNS", "0") or 0)))
    console.print(f"\n[bold]{title}[/]" if title else "")
    table = Table()
    for c in columns:
        table.add_column(c, justify="left" if c in {columns[0]} else "right")
    for r in cells:
        table.add_row(*r)
    console.print(table)


def write_results(name: str, data: dict[str, Any]) -> Path:
    """Print the JSON to stdout and write benchmarks/results/<name>.json (gitignored)."""
    text = json.dumps(data, indent=2, sort_keys=False)
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(text + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return path


def fmt_s(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def fmt_ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}×"


def fmt_mib(kib: int | None) -> str:
    return "—" if kib is None else f"{kib / 1024:.0f} MiB"


def sizes_arg(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"not a comma-separated list of integers: {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise SystemExit(f"sizes must be positive integers: {text!r}")
    return values


def print_cprofile(what: str, prof: dict[str, Any]) -> None:
    """The two tables of a ``_profile_cli.py --mode cprofile`` result."""

    def row(f: dict[str, Any]) -> list[Any]:
        return [f["function"], f["calls"], f"{f['tottime']:.3f}", f"{f['cumtime']:.3f}"]

    rows = [row(f) for f in prof["cumulative"]]
    print_table(
        f"cProfile of {what}: {prof['total_s']:.3f}s profiled, of which imports {prof['imports_s']:.3f}s; "
        "top by cumulative time (pass-through frames hidden; the profiler inflates pure-Python work)",
        ["function", "calls", "tottime", "cumtime"],
        rows,
    )
    rows = [row(f) for f in prof["self"][:15]]
    print_table(f"cProfile of {what}: top by self time", ["function", "calls", "tottime", "cumtime"], rows)
