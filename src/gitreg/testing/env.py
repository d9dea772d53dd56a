"""An isolated environment for gitreg, git and DVC: a fresh HOME with its own git identity, no
system or user git config, quiet DVC, fake AWS credentials, and none of the variables that
change how the CLI renders (COLUMNS/LINES from pytest-xdist, GITHUB_ACTIONS, GITREG_DEBUG)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

IDENTITY_NAME = "Test User"
IDENTITY_EMAIL = "test@example.com"
# Variables removed from the isolated environment: they would change the CLI's output.
UNSET = ("GITREG_DEBUG", "COLUMNS", "LINES", "GITHUB_ACTIONS")
# Prefixes of inherited variables that a clean environment drops (``clean_environ``).
FOREIGN_PREFIXES = ("GIT_", "DVC_", "AWS_", "GITREG_")


class SetsEnv(Protocol):
    """What the harness needs of pytest's ``monkeypatch``: an undoable setenv."""

    def setenv(self, name: str, value: str, prepend: str | None = None) -> None: ...


def write_gitconfig(
    home: Path, *, name: str = IDENTITY_NAME, email: str = IDENTITY_EMAIL, extra: str = ""
) -> Path:
    """``home/.gitconfig``: an identity, branch ``main``, file:// remotes allowed, plus ``extra``."""
    path = home / ".gitconfig"
    path.write_text(
        f"[user]\n\tname = {name}\n\temail = {email}\n"
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
        '[protocol "file"]\n\tallow = always\n' + extra
    )
    return path


def env_vars(home: Path, gitconfig: Path | None = None) -> dict[str, str]:
    """The variables that isolate a process under ``home`` (``home/.gitconfig`` unless given)."""
    return {
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "GIT_CONFIG_GLOBAL": str(gitconfig or home / ".gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "DVC_NO_ANALYTICS": "1",
        "DVC_NO_UPDATER": "1",
        "DVC_SITE_CACHE_DIR": str(home / ".dvc-site-cache"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def make_home(home: Path, **gitconfig: str) -> dict[str, str]:
    """Create ``home`` with its .gitconfig; return ``env_vars(home)``."""
    home.mkdir(parents=True, exist_ok=True)
    write_gitconfig(home, **gitconfig)
    return env_vars(home)


def clean_environ(
    home: Path,
    base: Mapping[str, str] | None = None,
    *,
    drop: tuple[str, ...] = FOREIGN_PREFIXES,
    **gitconfig: str,
) -> dict[str, str]:
    """A whole environment for subprocesses: ``base`` (default ``os.environ``) without the
    variables starting with ``drop`` (git, DVC, AWS, gitreg) nor ``UNSET``, plus the isolated
    HOME created under ``home``."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith(drop) and k not in UNSET}
    env.update(make_home(home, **gitconfig))
    return env


@contextmanager
def isolated_home(home: Path, **gitconfig: str) -> Iterator[dict[str, str]]:
    """Run the body with this process's ``os.environ`` isolated under ``home``; restored on exit.
    For module-scoped fixtures and session templates, which cannot use a per-test monkeypatch."""
    saved = dict(os.environ)
    env = make_home(home, **gitconfig)
    os.environ.update(env)
    for key in UNSET:
        os.environ.pop(key, None)
    try:
        yield env
    finally:
        os.environ.clear()
        os.environ.update(saved)
