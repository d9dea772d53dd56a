"""Running git: one plain subprocess per command (``run_git``) and one long-running
``git cat-file --batch`` for many objects (``ObjectReader``), in a clean environment."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from gitreg.errors import GitError


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GIT_TERMINAL_PROMPT", "0")
    env["LC_ALL"] = "C"
    return env


def run_git(
    args: Sequence[str],
    cwd: Path | str,
    *,
    input: bytes | None = None,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=input,
            capture_output=True,
            env={**_env(), **(env or {})},
            check=False,
        )
    except FileNotFoundError:
        raise GitError(args[0], "git is not installed", "install git 2.30 or newer") from None
    if check and proc.returncode != 0:
        raise GitError(" ".join(args[:2]), proc.stderr.decode(errors="replace"))
    return proc


class ObjectReader:
    """A ``git cat-file --batch`` started on the first :meth:`read` and kept for the next ones:
    one git process however many rounds of reads (``--limit`` reads only what it needs)."""

    _CHUNK = 512  # ids written per round trip: 21 KB, well under a pipe's buffer (no deadlock)

    def __init__(self, root: Path) -> None:
        self.root = root
        self._proc: subprocess.Popen[bytes] | None = None

    def read(self, shas: Sequence[str]) -> dict[str, tuple[str, bytes]]:
        """id -> (object type, contents) for these ids; missing ones are left out."""
        result: dict[str, tuple[str, bytes]] = {}
        wanted = list(dict.fromkeys(shas))
        if not wanted:
            return result
        if self._proc is None:
            try:
                self._proc = subprocess.Popen(
                    ["git", "cat-file", "--batch"],
                    cwd=self.root,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    env=_env(),
                )
            except FileNotFoundError:
                raise GitError("cat-file", "git is not installed", "install git 2.30 or newer") from None
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        for i in range(0, len(wanted), self._CHUNK):
            chunk = wanted[i : i + self._CHUNK]
            try:
                proc.stdin.write(("\n".join(chunk) + "\n").encode())
                proc.stdin.flush()
            except BrokenPipeError:
                raise GitError("cat-file", "git cat-file --batch stopped") from None
            for sha in chunk:
                header = proc.stdout.readline().split()
                if not header:
                    raise GitError("cat-file", "git cat-file --batch stopped")
                if header[-1] in (b"missing", b"ambiguous") or len(header) != 3:
                    continue  # "<id> missing" (an id may be "rev:path with spaces")
                data = proc.stdout.read(int(header[2]) + 1)[:-1]  # contents + "\n"
                result[sha] = (header[1].decode(), data)
        return result

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin is not None:
                proc.stdin.close()
            if proc.stdout is not None:
                proc.stdout.close()
            proc.wait()

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
