"""`gitreg init` end to end: the real CLI in a subprocess on real folders and Git repositories."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from gitreg.testing.cli import run_cli
from gitreg.testing.repos import git


def commit_count(repo: Path) -> int:
    return int(git(repo, "rev-list", "--count", "HEAD"))


def dvc_remote_url(repo: Path) -> str:
    """The url of the default DVC remote, read from .dvc/config as committed text."""
    text = (repo / ".dvc" / "config").read_text()
    default = re.search(r"^\s*remote\s*=\s*(\S+)\s*$", text, re.M)
    assert default, text
    section = re.search(
        rf"""^\['remote "{re.escape(default.group(1))}"'\]\s*\n\s*url\s*=\s*(.+?)\s*$""", text, re.M
    )
    assert section, text
    return section.group(1)


def printed_remote(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith("DVC remote: ")]
    assert len(lines) == 1, stdout
    return lines[0].removeprefix("DVC remote: ").strip()


def assert_one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def tree_listing(root: Path) -> list[str]:
    """Every path under ``root`` (including .git internals), to prove that nothing was written."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# -- a new registry in an empty folder ------------------------------------------------------------
def test_init_in_empty_folder_makes_a_registry_in_one_commit(tmp_path: Path) -> None:
    repo = tmp_path / "fresh"
    repo.mkdir()

    proc = run_cli("init", cwd=repo, check=True)

    assert (repo / ".git").is_dir()
    assert git(repo, "rev-parse", "--show-toplevel") == str(repo.resolve())
    assert commit_count(repo) == 1
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""

    # The DVC remote: a folder outside the working tree, created, printed, and the default.
    url = dvc_remote_url(repo)
    assert printed_remote(proc.stdout) == url
    remote = Path(url)
    assert remote.is_absolute() and remote.is_dir()
    assert not remote.resolve().is_relative_to(repo.resolve())
    assert remote.resolve().is_relative_to(Path(os.environ["XDG_DATA_HOME"]).resolve())

    # models.yaml: an empty, valid manifest.
    from gitreg import manifest as mf

    loaded = mf.load(repo / "models.yaml")
    assert loaded.model.version == 1
    assert loaded.model.models == {}

    ignore = (repo / ".gitignore").read_text().splitlines()
    assert "/.gitreg/" in ignore
    assert any(line.startswith("/v[0-9][0-9][0-9][0-9]-") for line in ignore), ignore

    workflow = repo / ".github" / "workflows" / "gitreg.yml"
    assert "gitreg" in workflow.read_text()
    assert "models.yaml" in (repo / "CODEOWNERS").read_text()
    assert not (repo / ".gitlab-ci.yml").exists()

    committed = set(git(repo, "ls-tree", "-r", "--name-only", "HEAD").splitlines())
    for path in (
        ".dvc/config",
        "models.yaml",
        ".gitignore",
        ".github/workflows/gitreg.yml",
        "CODEOWNERS",
    ):
        assert path in committed, committed


def test_second_init_changes_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "twice"
    repo.mkdir()
    first = run_cli("init", cwd=repo, check=True)
    head = git(repo, "rev-parse", "HEAD")
    files = {p: (repo / p).read_bytes() for p in ("models.yaml", ".dvc/config", ".gitignore")}

    second = run_cli("init", cwd=repo, check=True)

    assert "nothing changed" in second.stdout
    assert printed_remote(second.stdout) == printed_remote(first.stdout)
    assert git(repo, "rev-parse", "HEAD") == head
    assert commit_count(repo) == 1
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert {p: (repo / p).read_bytes() for p in files} == files


@pytest.mark.parametrize(
    ("ci", "present", "absent"),
    [
        ("gitlab", [".gitlab-ci.yml"], [".github"]),
        ("none", [], [".github", ".gitlab-ci.yml"]),
    ],
)
def test_init_ci_choice(tmp_path: Path, ci: str, present: list[str], absent: list[str]) -> None:
    repo = tmp_path / f"ci-{ci}"
    repo.mkdir()

    run_cli("init", "--ci", ci, cwd=repo, check=True)

    for rel in present:
        assert (repo / rel).is_file(), rel
        assert rel in git(repo, "ls-files")
    for rel in absent:
        assert not (repo / rel).exists(), rel
    assert (repo / "CODEOWNERS").is_file()
    assert commit_count(repo) == 1


def test_init_unknown_ci_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "ci-bad"
    repo.mkdir()
    proc = run_cli("init", "--ci", "jenkins", cwd=repo)
    assert "jenkins" in assert_one_error_line(proc)
    assert tree_listing(repo) == []


def test_init_uses_the_given_remote_folder(tmp_path: Path) -> None:
    repo = tmp_path / "with-remote"
    repo.mkdir()
    store = tmp_path / "elsewhere" / "dvc-store"

    proc = run_cli("-C", str(repo), "init", "--remote", str(store), cwd=tmp_path, check=True)

    assert dvc_remote_url(repo) == str(store.resolve())
    assert printed_remote(proc.stdout) == str(store.resolve())
    assert store.is_dir()
    assert commit_count(repo) == 1


def test_init_relative_remote_is_resolved_from_the_callers_folder(tmp_path: Path) -> None:
    repo = tmp_path / "rel"
    repo.mkdir()
    run_cli("init", "--remote", "../rel-store", cwd=repo, check=True)
    assert dvc_remote_url(repo) == str((tmp_path / "rel-store").resolve())
    assert (tmp_path / "rel-store").is_dir()


def test_init_remote_inside_the_repo_is_refused_in_an_empty_folder(tmp_path: Path) -> None:
    repo = tmp_path / "inside"
    repo.mkdir()

    proc = run_cli("init", "--remote", "store", cwd=repo)

    line = assert_one_error_line(proc)
    assert "inside the repository" in line
    assert proc.stdout == ""
    # Nothing at all was created: no .git, no .dvc, no remote folder.
    assert tree_listing(repo) == []


def test_init_remote_inside_the_repo_is_refused_in_an_existing_repo(tmp_path: Path) -> None:
    repo = tmp_path / "existing"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "README.md").write_text("hello\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "first")
    head = git(repo, "rev-parse", "HEAD")
    before = tree_listing(repo)

    proc = run_cli("-C", str(repo), "init", "--remote", str(repo / "sub" / "store"), cwd=tmp_path)

    assert "inside the repository" in assert_one_error_line(proc)
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert not (repo / ".dvc").exists()
    assert not (repo / "sub").exists()
    assert tree_listing(repo) == before


def test_init_json_output(tmp_path: Path) -> None:
    repo = tmp_path / "as-json"
    repo.mkdir()

    first = json.loads(run_cli("init", "--json", cwd=repo, check=True).stdout)
    second = json.loads(run_cli("init", "--json", cwd=repo, check=True).stdout)

    assert first["changed"] is True
    assert first["created_git"] is True
    assert Path(first["root"]) == repo.resolve()
    assert first["commit"] == git(repo, "rev-parse", "HEAD")
    assert first["remote_url"] == dvc_remote_url(repo)
    assert {"models.yaml", ".dvc/config", "CODEOWNERS", ".github/workflows/gitreg.yml"} <= set(
        first["written"]
    )
    assert second["changed"] is False
    assert second["created_git"] is False
    assert second["commit"] is None
    assert second["remote_url"] == first["remote_url"]


def test_init_in_an_existing_repo_adds_exactly_one_commit(tmp_path: Path) -> None:
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "train.py").write_text("print('train')\n")
    (repo / ".gitignore").write_text("__pycache__/\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "project")
    old_head = git(repo, "rev-parse", "HEAD")
    (repo / "notes.txt").write_text("my own untracked file\n")

    proc = run_cli("init", cwd=repo, check=True)

    assert "new Git repository" not in proc.stdout
    assert commit_count(repo) == 2
    assert git(repo, "rev-parse", "HEAD~1") == old_head
    # The user's files: untouched, and their untracked file is not swept into the commit.
    assert (repo / "train.py").read_text() == "print('train')\n"
    changed = git(repo, "diff", "--name-only", "HEAD~1", "HEAD").splitlines()
    assert "notes.txt" not in changed
    assert "train.py" not in changed
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == "?? notes.txt"
    ignore = (repo / ".gitignore").read_text().splitlines()
    assert ignore[0] == "__pycache__/"  # existing lines kept, ours appended
    assert "/.gitreg/" in ignore
    assert {"models.yaml", ".dvc/config", ".gitignore", "CODEOWNERS"} <= set(changed)
