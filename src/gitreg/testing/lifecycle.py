"""A lifecycle registry for the promote, rollback, check and CI-template tests.

One registry with two models and six versions is built once per process (init, DVC, real
TorchScript bundles, real tags) and copied for every test, with a fresh bare remote. Versions
are marked validated by storing a passing validation record as the tag's git note, exactly
what `gitreg validate --record` stores (the CI template test runs the real validation).
The fake `gh`/`glab` are the only stand-ins: executables on PATH that record their argv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from gitreg.testing.bundles import write_bundle
from gitreg.testing.env import SetsEnv, isolated_home
from gitreg.testing.repos import git, init_bare


class MakesTempDirs(Protocol):
    """What ``template`` needs of pytest's ``tmp_path_factory``."""

    def mktemp(self, basename: str, numbered: bool = True) -> Path: ...


P1 = "v2025-07-01--10h00"
P2 = "v2025-07-02--10h00"
P3 = "v2025-07-03--10h00"
P4 = "v2025-07-04--10h00"  # never validated
R1 = "v2025-07-01--11h00"
R2 = "v2025-07-02--11h00"
POLICY_VERSIONS = (P1, P2, P3, P4)
RANKER_VERSIONS = (R1, R2)
VALIDATED = (P1, P2, P3, R1, R2)

_TEMPLATE: dict[str, Path] = {}


def mark_validated(repo: Path, version: str) -> None:
    """Store a passing validation record on the tag, as `gitreg validate --record` does."""
    from gitreg.metadata import CheckResult, ValidationRecord
    from gitreg.registry import Registry

    reg = Registry(repo)
    info = reg.get(version)
    record = ValidationRecord(
        version=version,
        passed=True,
        checked_at=datetime(2025, 7, 8, 12, 0, tzinfo=UTC),
        checked_by="gitreg-ci <ci@example.com>",
        checks=[CheckResult(name="load", ok=True, detail="torchscript, forward pass ok")],
        files=info.files,
    )
    reg.git.add_note(info.tag_object, record.to_note())


def build_template(base: Path) -> Path:
    """A registry under ``base``: models ``policy`` (P1..P4) and ``ranker`` (R1, R2), all but P4
    marked validated; built in an isolated HOME under ``base``."""
    from gitreg.registry import Registry

    with isolated_home(base / "home"):
        repo = base / "registry"
        Registry.init(repo, remote=str(base / "dvc-remote"), ci="github")
        reg = Registry(repo)
        for i, v in enumerate(POLICY_VERSIONS):
            reg.register(write_bundle(base / "bundles" / v, i), "policy", version=v)
        for i, v in enumerate(RANKER_VERSIONS):
            reg.register(write_bundle(base / "bundles" / v, 10 + i), "ranker", version=v)
        for v in VALIDATED:
            mark_validated(repo, v)
    return repo


def template(factory: MakesTempDirs) -> Path:
    """This process's pristine template registry (built on first use, then copied by tests)."""
    if "repo" not in _TEMPLATE:
        _TEMPLATE["repo"] = build_template(factory.mktemp("lifecycle-template"))
    return _TEMPLATE["repo"]


@dataclass
class Repo:
    """A test's registry clone-by-copy plus its bare remote."""

    path: Path
    remote: Path
    calls_log: Path
    bin_dir: Path
    extra: dict[str, str] = field(default_factory=dict)

    def git(self, *args: str) -> str:
        return git(self.path, *args)

    def remote_git(self, *args: str) -> str:
        return git(self.remote, *args)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def manifest(self) -> bytes:
        return (self.path / "models.yaml").read_bytes()

    def manifest_at(self, rev: str) -> str:
        return self.git("show", f"{rev}:models.yaml") + "\n"

    def remote_refs(self) -> str:
        return self.remote_git("for-each-ref", "--format=%(refname) %(objectname)")

    def forge_calls(self) -> list[dict]:
        if not self.calls_log.exists():
            return []
        return [json.loads(line) for line in self.calls_log.read_text().splitlines() if line]

    def push_all(self) -> None:
        self.git("push", "-q", "origin", "HEAD:refs/heads/main", "--tags")
        self.git("push", "-q", "origin", "refs/notes/gitreg:refs/notes/gitreg")

    def snapshot(self) -> dict[str, object]:
        """Everything a refusal must leave as it was."""
        return {
            "head": self.head(),
            "branch": subprocess.run(
                ["git", "symbolic-ref", "-q", "HEAD"],
                cwd=self.path,
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip(),
            # the remote's notes, fetched on a refusal that needed them, are no change of this repo's
            "refs": "\n".join(
                ln
                for ln in self.git("for-each-ref", "--format=%(refname) %(objectname)").splitlines()
                if not ln.startswith("refs/notes/remotes/")
            ),
            "status": self.git("status", "--porcelain", "--untracked-files=all"),
            "manifest": self.manifest(),
            "worktrees": self.git("worktree", "list", "--porcelain").count("worktree "),
            "remote": self.remote_refs(),
        }


def make_repo(tmp_path: Path, factory: MakesTempDirs, monkeypatch: SetsEnv) -> Repo:
    """Copy the template, add a fresh bare `origin` holding main, the tags and the notes, and
    put fake gh/glab on PATH."""
    path = tmp_path / "registry"
    shutil.copytree(template(factory), path, symlinks=True)
    remote = tmp_path / "remote.git"
    init_bare(remote)
    git(path, "remote", "add", "origin", str(remote))
    bin_dir = tmp_path / "bin"
    repo = Repo(path=path, remote=remote, calls_log=tmp_path / "forge-calls.jsonl", bin_dir=bin_dir)
    repo.push_all()
    install_fake_forge(bin_dir, repo.calls_log)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return repo


FAKE_FORGE = """#!{python}
import json, os, sys
with open({log!r}, "a") as f:
    f.write(json.dumps({{"tool": {tool!r}, "argv": sys.argv[1:], "cwd": os.getcwd()}}) + "\\n")
code = int(os.environ.get("FAKE_FORGE_EXIT", "0"))
if code:
    sys.stderr.write("{tool}: HTTP 422: a pull request for this branch already exists\\n")
    sys.exit(code)
print({url!r})
"""
PR_URLS = {
    "gh": "https://github.com/org/reg/pull/7",
    "glab": "https://gitlab.example.com/team/reg/-/merge_requests/7",
}


def install_fake_forge(bin_dir: Path, log: Path, tools: tuple[str, ...] = ("gh", "glab")) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in tools:
        script = bin_dir / tool
        script.write_text(
            FAKE_FORGE.format(python=sys.executable, log=str(log), tool=tool, url=PR_URLS[tool])
        )
        script.chmod(0o755)


def path_without_forge_tools(bin_dir: Path) -> str:
    """PATH without our fake tools and without any real gh/glab."""
    keep = []
    for entry in os.environ["PATH"].split(os.pathsep):
        if not entry or Path(entry) == bin_dir:
            continue
        if any((Path(entry) / t).exists() for t in ("gh", "glab")):
            continue
        keep.append(entry)
    return os.pathsep.join(keep)


def point_origin_at(repo: Repo, url: str) -> None:
    """Make `origin` look like a hosted remote while pushes still reach the bare repo (a
    pushurl: `git remote get-url` expands insteadOf, which would hide the hosted URL)."""
    repo.git("remote", "set-url", "origin", url)
    repo.git("remote", "set-url", "--push", "origin", str(repo.remote))


def trailers(repo: Repo, rev: str) -> dict[str, str]:
    out = repo.git("log", "-1", "--format=%(trailers:only,unfold)", rev)
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def direct(repo: Repo, version: str, stage: str | None = None, **kw: object) -> None:
    """Set-up step: a --direct promotion through the Python API (no PR, no push)."""
    from gitreg.registry import Registry

    Registry(repo.path).promote(version, stage, direct=True, **kw)  # type: ignore[arg-type]


def commit_manifest(repo: Repo, text: str, message: str = "edit models.yaml by hand") -> str:
    (repo.path / "models.yaml").write_text(text)
    repo.git("commit", "-q", "-m", message, "--", "models.yaml")
    return repo.head()


def set_retention(reg: Any, model: str = "policy", **retention: int) -> None:
    """Commit a ``retention:`` block (flow style) for ``model`` in the registry's models.yaml."""
    from ruamel.yaml.comments import CommentedMap

    from gitreg import manifest as mf

    m = mf.load(reg.manifest_path)
    ret = CommentedMap(retention)
    ret.fa.set_flow_style()
    m.doc["models"][model]["retention"] = ret
    m.save(reg.manifest_path)
    git(reg.root, "commit", "-q", "-m", f"retention for {model}", "--", mf.MANIFEST_FILE)
