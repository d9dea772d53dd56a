"""Clone, fetch and push through GitPython (gitreg.gitrepo.transport): progress reports reach
the callback as TransferProgress records, failures are GitError with git's words and a hint,
and nothing of GitPython leaks out or is imported by the read path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gitreg.errors import GitError
from gitreg.gitrepo import GitRepo, TransferProgress


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A bare origin with 40 commits, each under an annotated version tag."""
    work = tmp_path / "work"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    for i in range(40):
        (work / "metadata.json").write_text(f'{{"n": {i}, "pad": "{"x" * 2000}{i}"}}\n')
        _git(work, "add", "metadata.json")
        _git(work, "commit", "-q", "-m", f"register {i}")
        _git(work, "tag", "-a", "-m", f"version {i}", f"v2025-01-01--00h{i:02d}")
    bare = tmp_path / "origin.git"
    _git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    return bare


def test_mirror_clone_and_fetch_report_progress(tmp_path: Path, origin: Path) -> None:
    seen: list[TransferProgress] = []
    mirror = GitRepo.mirror(origin.as_uri(), tmp_path / "mirror.git", progress=seen.append)
    assert mirror.bare and len(_git(mirror.root, "tag", "--list").split()) == 40
    assert {p.operation for p in seen} == {"clone"}
    receiving = [p for p in seen if p.stage == "receiving objects"]
    assert receiving and receiving[-1].done and receiving[-1].current == receiving[-1].total

    _git(origin, "tag", "-a", "-m", "late", "v2025-01-02--00h00", "main")
    fetched: list[TransferProgress] = []
    mirror.fetch_mirror(progress=fetched.append)
    assert "v2025-01-02--00h00" in _git(mirror.root, "tag", "--list").split()
    assert all(p.operation == "fetch" for p in fetched)


def test_push_reports_progress_and_a_refused_ref_is_a_git_error(tmp_path: Path, origin: Path) -> None:
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(origin), str(clone))
    target = tmp_path / "target.git"
    _git(tmp_path, "init", "-q", "--bare", str(target))
    seen: list[TransferProgress] = []
    GitRepo(clone).push(str(target), ["refs/tags/*:refs/tags/*"], progress=seen.append)
    assert len(_git(target, "tag", "--list").split()) == 40
    assert any(p.operation == "push" and p.stage == "writing objects" and p.done for p in seen)

    # the same tag name on another commit: the remote refuses it (tags are never overwritten)
    _git(clone, "tag", "-f", "-a", "-m", "moved", "v2025-01-01--00h00", "main")
    with pytest.raises(GitError) as e:
        GitRepo(clone).push(str(target), ["refs/tags/v2025-01-01--00h00"])
    assert e.value.command == "push"
    assert "refs/tags/v2025-01-01--00h00" in e.value.stderr and "rejected" in e.value.stderr
    assert "may push" in e.value.hint


def test_unreachable_remotes_are_git_errors_with_gits_words(tmp_path: Path, origin: Path) -> None:
    missing = tmp_path / "nowhere.git"
    with pytest.raises(GitError) as e:
        GitRepo.mirror(missing.as_uri(), tmp_path / "m.git")
    assert e.value.message.startswith("git clone: fatal:") and "reachable" in e.value.hint
    assert not (tmp_path / "m.git").exists()

    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(origin), str(clone))
    with pytest.raises(GitError) as e:
        GitRepo(clone).push(str(missing), ["refs/tags/v2025-01-01--00h01"])
    assert e.value.message.startswith("git push: fatal:"), e.value.message
    with pytest.raises(GitError) as e:
        GitRepo(clone).fetch(str(missing), ["+refs/notes/gitreg:refs/notes/gitreg-remote"])
    assert e.value.message.startswith("git fetch: fatal:"), e.value.message

    # GitPython refuses git's ext:: transport (it runs a command): a GitError, nothing run
    pwned = tmp_path / "pwned"
    with pytest.raises(GitError) as e:
        GitRepo(clone).push(f"ext::sh -c touch% {pwned}", ["refs/tags/v2025-01-01--00h01"])
    assert "UnsafeProtocolError" in e.value.message and not pwned.exists()


def test_the_read_path_does_not_import_gitpython(origin: Path) -> None:
    code = (
        "import sys; from gitreg.gitrepo import GitRepo; r = GitRepo(sys.argv[1]); "
        "r.version_tags(); r.notes(); print('git' in sys.modules, 'gitreg.gitrepo.transport' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(origin)], check=True, capture_output=True, text=True
    )
    assert out.stdout.split() == ["False", "False"]
