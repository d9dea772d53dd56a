"""The CLI as a user runs it: the installed ``gitreg`` console script in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# The console script of this interpreter's environment (the venv the tests run in).
GITREG = str(Path(sys.executable).parent / "gitreg")


def gitreg_command() -> list[str]:
    """How to start gitreg: the console script next to this interpreter, else ``python -m gitreg``."""
    return [GITREG] if Path(GITREG).exists() else [sys.executable, "-m", "gitreg"]


def run_cli(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``gitreg ARGS`` with ``os.environ`` updated by ``env``; raise if ``check`` and it failed."""
    proc = subprocess.run(
        [*gitreg_command(), *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    if check is True and proc.returncode != 0:
        raise AssertionError(f"gitreg {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc
