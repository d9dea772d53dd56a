"""What every command shares: the global options' state, the registry it opens, the options
several commands take, and the checks of command-line values that are not the registry's."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gitreg.errors import GitregError

if TYPE_CHECKING:
    from gitreg.registry import Registry


class State:
    """The global options of this invocation (set by the app's callback)."""

    path: Path = Path(".")
    traceback: bool = False
    repo: str | None = None  # --repo URL: read the registry through a cached mirror
    branch: str | None = None  # --branch: the remote branch whose models.yaml is read
    command: str | None = None  # the subcommand being run


# What --repo can do: read. Changing a registry needs a clone (its commits, its lock).
REMOTE_COMMANDS = (
    "list",
    "show",
    "resolve",
    "compare",
    "history",
    "status",
    "pull",
    "lineage",
    "report",
    "check",
)


state = State()


def debug() -> bool:
    """Show tracebacks: ``--traceback`` or GITREG_DEBUG set (to anything but 0)."""
    return state.traceback or os.environ.get("GITREG_DEBUG", "") not in ("", "0")


def registry() -> Registry:
    from gitreg.registry import Registry

    if state.repo is None:
        if state.branch is not None:
            raise GitregError("--branch goes with --repo", "gitreg --repo URL --branch NAME COMMAND")
        return Registry(state.path)
    if state.path != Path("."):
        raise GitregError("-C and --repo name two registries", "pass one of them")
    if state.command not in REMOTE_COMMANDS:
        raise GitregError(
            f"gitreg {state.command} changes the registry: it needs a clone, not --repo",
            f"git clone {state.repo} && cd into it, then run gitreg {state.command}",
        )
    from gitreg.cli._progress import TransferProgress

    with TransferProgress() as progress:
        return Registry.from_remote(state.repo, branch=state.branch, progress=progress.git)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

AllowedSignersOpt = Annotated[
    Path | None,
    typer.Option(
        "--allowed-signers",
        help="SSH allowed-signers file trusted to verify tag signatures (git's gpg.ssh.allowedSignersFile).",
    ),
]

AllowArchitectureOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-architecture",
        metavar="PKG.MODULE:CLASS",
        help="Allow a state dict to be loaded into this class, pkg.module:ClassName (repeatable; "
        "adds to models.yaml's policy.architectures).",
    ),
]

VersionArg = Annotated[
    str,
    typer.Argument(
        help="A version (v2025-07-06--18h51) or a reference: policy@production, policy@staging, "
        "policy@canary, policy@latest, policy@v2025-07-06--18h51."
    ),
]
RefOpt = Annotated[
    str | None,
    typer.Option(
        "--ref",
        help="Resolve MODEL@STAGE against models.yaml at this commit, branch or tag "
        "(default: the checked-out models.yaml).",
    ),
]


def trust_signers(path: Path | None) -> None:
    """Make every git call of this process verify SSH signatures against ``path`` (through
    GIT_CONFIG_COUNT, which git reads like ``-c``; the user's git config is not changed)."""
    if path is None:
        return
    if not path.is_file():
        raise GitregError(f"--allowed-signers {path}: no such file", "one line per key: EMAIL KEYTYPE KEY")
    n = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
    os.environ[f"GIT_CONFIG_KEY_{n}"] = "gpg.ssh.allowedSignersFile"
    os.environ[f"GIT_CONFIG_VALUE_{n}"] = str(path.resolve())
    os.environ["GIT_CONFIG_COUNT"] = str(n + 1)


def architectures(specs: list[str] | None) -> list[str]:
    from gitreg.versions import is_architecture

    for spec in specs or []:
        if not is_architecture(spec):
            raise GitregError(
                f"--allow-architecture {spec!r} is not of the form pkg.module:ClassName",
                "name a class, e.g. --allow-architecture mypkg.nets:PolicyNet",
            )
    return list(specs or [])
