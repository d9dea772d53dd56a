"""Pull requests on the Git host ("forge"): `gh` for GitHub, `glab` for GitLab, else a URL.

gitreg never talks to a host's API itself: when the host's own CLI is on PATH it runs it (the
user's existing login applies), otherwise it returns the compare / new-merge-request URL for a
person to open.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

_SCP = re.compile(r"^(?:[\w.-]+@)?(?P<host>[\w.-]+):(?P<path>[^/].*?)(?:\.git)?/?$")
_URL = re.compile(r"^(?:https?|ssh|git)://(?:[^@/]+@)?(?P<host>[\w.-]+)(?::\d+)?/(?P<path>.+?)(?:\.git)?/?$")


@dataclass(frozen=True)
class PullRequest:
    tool: str | None  # "gh", "glab", or None when only a URL could be given
    url: str | None
    output: str = ""


@dataclass(frozen=True)
class Hosted:
    host: str
    path: str  # owner/repo (GitLab: group/subgroup/repo)

    @property
    def is_gitlab(self) -> bool:
        return "gitlab" in self.host


def parse_remote(url: str | None) -> Hosted | None:
    if not url or url.startswith(("/", ".", "file://")) or Path(url).exists():
        return None
    for pattern in (_URL, _SCP):
        m = pattern.match(url)
        if m:
            return Hosted(m["host"], m["path"])
    return None


def compare_url(remote_url: str | None, base: str, branch: str) -> str | None:
    hosted = parse_remote(remote_url)
    if hosted is None:
        return None
    if hosted.is_gitlab:
        return (
            f"https://{hosted.host}/{hosted.path}/-/merge_requests/new"
            f"?merge_request%5Bsource_branch%5D={quote(branch)}"
            f"&merge_request%5Btarget_branch%5D={quote(base)}"
        )
    return f"https://{hosted.host}/{hosted.path}/compare/{quote(base)}...{quote(branch)}?expand=1"


def open_pull_request(
    root: Path, remote_url: str | None, base: str, branch: str, title: str, body: str
) -> PullRequest:
    """Open a PR/MR with the host's CLI when present; else return the URL to open by hand."""
    hosted = parse_remote(remote_url)
    gitlab = hosted is not None and hosted.is_gitlab
    if gitlab and shutil.which("glab"):
        cmd = [
            "glab",
            "mr",
            "create",
            "--source-branch",
            branch,
            "--target-branch",
            base,
            "--title",
            title,
            "--description",
            body,
            "--yes",
        ]
        return _run(root, "glab", cmd, remote_url, base, branch)
    if not gitlab and shutil.which("gh"):
        cmd = ["gh", "pr", "create", "--base", base, "--head", branch, "--title", title, "--body", body]
        return _run(root, "gh", cmd, remote_url, base, branch)
    return PullRequest(tool=None, url=compare_url(remote_url, base, branch))


def _run(
    root: Path, tool: str, cmd: list[str], remote_url: str | None, base: str, branch: str
) -> PullRequest:
    from gitreg.errors import ForgeError

    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        err = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}").splitlines()[-1]
        url = compare_url(remote_url, base, branch)
        raise ForgeError(tool, err, branch, url)
    urls = re.findall(r"https?://\S+", proc.stdout)
    return PullRequest(tool=tool, url=urls[-1] if urls else None, output=proc.stdout.strip())
