"""The demo's voice: numbered headings, the commands a user would type, and their output; and
the demo repositories' own Git identity, so the demo runs where Git was never configured."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from gitreg.cli import render
from gitreg.gitrepo import run_git

DEMO_NAME = "gitreg demo"
DEMO_EMAIL = "demo@gitreg.invalid"
# Local config for the demo repositories: an identity, and no signing a global config may ask for.
LOCAL_GIT_CONFIG = {
    "user.name": DEMO_NAME,
    "user.email": DEMO_EMAIL,
    "commit.gpgsign": "false",
    "tag.gpgsign": "false",
    "push.gpgsign": "false",
}


class Narrator:
    """Prints the tour: numbered headings, the commands a user would type, what they print."""

    def __init__(self) -> None:
        self.c = render.console()
        self.step = 0

    def heading(self, text: str) -> None:
        self.step += 1
        self.c.print()
        self.c.print(f"[bold magenta]{self.step}. {text}[/]")

    def cmd(self, text: str) -> None:
        self.c.print(f"[bold cyan]$ {escape(text)}[/]", soft_wrap=True)

    def say(self, text: str) -> None:
        self.c.print(f"[dim]{text}[/]", soft_wrap=True)

    def line(self, text: str = "") -> None:
        self.c.print(text, soft_wrap=True)


def git(cwd: Path, *args: str) -> str:
    return run_git(args, cwd).stdout.decode().strip()


def configure(repo: Path) -> None:
    """The demo identity (and no signing) in ``repo``'s local config."""
    for key, value in LOCAL_GIT_CONFIG.items():
        git(repo, "config", "--local", key, value)
