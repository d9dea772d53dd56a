"""`gitreg register` end to end: real CLI processes and the Python API on real Git repos and a
real DVC folder remote. Every refusal must leave the repository exactly as it was."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gitreg.testing.cli import GITREG, run_cli
from gitreg.testing.repos import git

VERSION_RE = re.compile(r"^v\d{4}-\d{2}-\d{2}--\d{2}h\d{2}(-\d+)?$")


# -- helpers -----------------------------------------------------------------------------------------
def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def remote_object(dvc_remote: Path, digest: str) -> Path:
    return dvc_remote / "files" / "md5" / digest[:2] / digest[2:]


def tag_summary(repo: Path, version: str) -> Any:
    from gitreg.metadata import parse_tag_message

    text = git(repo, "for-each-ref", "--format=%(contents)", f"refs/tags/{version}")
    summary, _ = parse_tag_message(text)
    assert summary is not None, text
    return summary


def files_under(root: Path) -> dict[str, str]:
    """Every file below ``root`` with its md5 (ignored files included, which git status hides)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): md5(p) for p in sorted(root.rglob("*")) if p.is_file()}


def snapshot(repo: Path) -> dict[str, Any]:
    """Everything a refused command must leave unchanged."""
    stash = Path(git(repo, "rev-parse", "--absolute-git-dir")) / "gitreg" / "stash"
    return {
        "head": git(repo, "rev-parse", "HEAD"),
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "tags": git(repo, "tag", "--list"),
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        # Ignored files too (a leftover policy.pt hides from plain status); DVC's own cache may grow.
        "ignored": [
            line
            for line in git(repo, "status", "--porcelain", "--ignored", "--untracked-files=all").splitlines()
            if line.startswith("!! ") and not line.startswith("!! .dvc/")
        ],
        "manifest": (repo / "models.yaml").read_bytes(),
        "models": files_under(repo / "models"),
        "stash": sorted(os.listdir(stash)) if stash.exists() else [],
    }


def assert_refused(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:"), proc.stderr
    assert proc.stdout == ""
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def registered_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Built once per module: a registry repo with one version of model `policy` (via the API)."""
    from gitreg.registry import Registry
    from gitreg.testing.bundles import write_bundle
    from gitreg.testing.clock import FixedClock
    from gitreg.testing.env import isolated_home

    base = tmp_path_factory.mktemp("registered-template")
    with isolated_home(base / "home"):
        remote = base / "dvc-remote"
        Registry.init(base / "registry", remote=str(remote), ci="github")
        reg = Registry(base / "registry", clock=FixedClock(datetime(2025, 7, 6, 18, 51, 23, tzinfo=UTC)))
        version = reg.register(write_bundle(base / "bundle0", 0), "policy").version
    return base / "registry", version


@pytest.fixture
def registered(registered_template: tuple[Path, str], tmp_path: Path) -> tuple[Path, str]:
    """A private copy of the template: one version of `policy`, clean working tree."""
    template, version = registered_template
    repo = tmp_path / "registry"
    shutil.copytree(template, repo, symlinks=True)
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    return repo, version


# -- the happy path ----------------------------------------------------------------------------------
def test_register_prints_version_tags_commits_and_uploads(
    repo_dir: Path, dvc_remote: Path, make_bundle: Any
) -> None:
    bundle = make_bundle(3)
    proc = run_cli("register", str(bundle), "--model", "policy", "--message", "first try", cwd=repo_dir)
    assert proc.returncode == 0, proc.stderr

    version = proc.stdout.strip()
    assert VERSION_RE.match(version), proc.stdout
    assert git(repo_dir, "cat-file", "-t", version) == "tag"  # annotated

    # The tag's machine-readable block describes exactly this bundle.
    summary = tag_summary(repo_dir, version)
    assert summary.version == version
    assert summary.model == "policy"
    assert summary.algorithm == "DQN"
    assert summary.metrics["reward"] == 103.0
    assert summary.registered_by == "Test User <test@example.com>"
    assert {f.path: f.md5 for f in summary.files} == {
        "policy.pt": md5(bundle / "policy.pt"),
        "metadata.json": md5(bundle / "metadata.json"),
    }
    assert "first try" in git(repo_dir, "for-each-ref", "--format=%(contents)", f"refs/tags/{version}")

    # The tagged commit is HEAD and holds the pointer, the metadata and the manifest entry.
    commit = git(repo_dir, "rev-parse", f"{version}^{{commit}}")
    assert commit == git(repo_dir, "rev-parse", "HEAD")
    tree = set(git(repo_dir, "ls-tree", "-r", "--name-only", commit).splitlines())
    assert {"models/policy/policy.pt.dvc", "models/policy/metadata.json", "models.yaml"} <= tree
    assert "models/policy/policy.pt" not in tree  # the bytes are DVC's, not Git's
    assert git(repo_dir, "show", f"{commit}:models/policy/metadata.json") == (
        (bundle / "metadata.json").read_text()
    )
    pointer = git(repo_dir, "show", f"{commit}:models/policy/policy.pt.dvc")
    assert md5(bundle / "policy.pt") in pointer
    from gitreg import manifest as mf

    entry = mf.loads(git(repo_dir, "show", f"{commit}:models.yaml")).model.models["policy"]
    assert entry.path == "models/policy"
    assert git(repo_dir, "status", "--porcelain", "--untracked-files=all") == ""

    # The bytes are on the DVC remote (a tag only exists once they are).
    obj = remote_object(dvc_remote, md5(bundle / "policy.pt"))
    assert obj.is_file()
    assert obj.read_bytes() == (bundle / "policy.pt").read_bytes()
    # stderr: one human summary line, no noise from DVC.
    assert proc.stderr.strip().startswith(f"registered policy {version}")


def test_register_json_output(repo_dir: Path, make_bundle: Any) -> None:
    proc = run_cli("register", str(make_bundle(1)), "--model", "policy", "--json", cwd=repo_dir, check=True)
    data = json.loads(proc.stdout)
    assert VERSION_RE.match(data["version"])
    assert data["model"] == "policy"
    assert data["commit"] == git(repo_dir, "rev-parse", "HEAD")
    assert data["pushed"] is False
    assert {f["path"] for f in data["files"]} == {"policy.pt", "metadata.json"}


def test_a_message_that_mentions_the_block_markers(registry: Any, make_bundle: Any) -> None:
    """A --message may quote the markers, even a whole forged block: the version stays visible
    and its real summary wins."""
    from gitreg.metadata import TAG_BLOCK_BEGIN, TAG_BLOCK_END

    forged = json.dumps({"schema": 1, "model": "evil", "version": "v2099-01-01--00h00"})
    message = f"inline {TAG_BLOCK_BEGIN} mention\n\n{TAG_BLOCK_BEGIN}\n{forged}\n{TAG_BLOCK_END}"
    version = registry.register(make_bundle(1), "policy", message=message).version

    shown = json.loads(run_cli("show", version, "--json", cwd=registry.root, check=True).stdout)
    assert (shown["version"], shown["model"], shown["algorithm"]) == (version, "policy", "DQN")
    assert "inline" in shown["message"] and "v2099-01-01--00h00" in shown["message"]
    listed = json.loads(run_cli("list", "--json", cwd=registry.root, check=True).stdout)
    assert [(r["version"], r["model"]) for r in listed] == [(version, "policy")]


def test_api_same_minute_gets_suffixes(registry: Any, make_bundle: Any) -> None:
    versions = [registry.register(make_bundle(seed), "policy").version for seed in range(3)]
    assert versions == ["v2025-07-06--18h51", "v2025-07-06--18h51-2", "v2025-07-06--18h51-3"]
    assert git(registry.root, "tag", "--list").split() == versions
    # Each tag pins its own bundle: three commits, each the parent of the next.
    commits = [git(registry.root, "rev-parse", f"{v}^{{commit}}") for v in versions]
    assert len(set(commits)) == 3
    assert git(registry.root, "rev-parse", f"{commits[2]}~1") == commits[1]
    # Another minute starts again without a suffix.
    registry.clock.advance(minutes=1)
    assert registry.register(make_bundle(9), "policy").version == "v2025-07-06--18h52"


def test_explicit_version_and_duplicate_is_refused(repo_dir: Path, make_bundle: Any) -> None:
    proc = run_cli(
        "register", str(make_bundle(1)), "--model", "policy", "--version", "v2024-01-02--03h04", cwd=repo_dir
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "v2024-01-02--03h04"
    assert tag_summary(repo_dir, "v2024-01-02--03h04").version == "v2024-01-02--03h04"

    before = snapshot(repo_dir)
    again = run_cli(
        "register", str(make_bundle(2)), "--model", "other", "--version", "v2024-01-02--03h04", cwd=repo_dir
    )
    assert_refused(again, "v2024-01-02--03h04", "already exists")
    assert snapshot(repo_dir) == before


def test_push_puts_commit_and_tag_on_the_git_remote(
    repo_dir: Path, bare_remote: Path, make_bundle: Any
) -> None:
    proc = run_cli("register", str(make_bundle(1)), "--model", "policy", "--push", cwd=repo_dir)
    assert proc.returncode == 0, proc.stderr
    version = proc.stdout.strip()
    assert "pushed to origin" in proc.stderr

    local_tag = git(repo_dir, "rev-parse", f"refs/tags/{version}")
    assert git(bare_remote, "rev-parse", f"refs/tags/{version}") == local_tag
    assert git(bare_remote, "cat-file", "-t", version) == "tag"
    assert git(bare_remote, "rev-parse", "refs/heads/main") == git(repo_dir, "rev-parse", "HEAD")


def test_push_without_git_remote_is_refused(repo_dir: Path, make_bundle: Any) -> None:
    git(repo_dir, "remote", "remove", "origin")
    before = snapshot(repo_dir)
    proc = run_cli("register", str(make_bundle(1)), "--model", "policy", "--push", cwd=repo_dir)
    assert_refused(proc, "no Git remote")
    assert snapshot(repo_dir) == before


def test_extra_bundle_files_are_tracked_too(repo_dir: Path, dvc_remote: Path, make_bundle: Any) -> None:
    extras = {"vocab/tokens.txt": b"alpha\nbeta\n", "normalizer.bin": os.urandom(2048)}
    bundle = make_bundle(1, extra_files=extras)

    version = run_cli("register", str(bundle), "--model", "policy", cwd=repo_dir, check=True).stdout.strip()

    tree = set(git(repo_dir, "ls-tree", "-r", "--name-only", version).splitlines())
    assert {"models/policy/vocab/tokens.txt.dvc", "models/policy/normalizer.bin.dvc"} <= tree
    assert "models/policy/vocab/tokens.txt" not in tree
    recorded = {f.path: f.md5 for f in tag_summary(repo_dir, version).files}
    for rel, data in extras.items():
        digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
        assert recorded[rel] == digest
        assert remote_object(dvc_remote, digest).read_bytes() == data
    assert git(repo_dir, "status", "--porcelain", "--untracked-files=all") == ""


def test_run_from_elsewhere_with_dash_c(tmp_path: Path, repo_dir: Path, make_bundle: Any) -> None:
    """-C PATH: paths DVC sees must not depend on the caller's working directory."""
    bundle = make_bundle(1)
    proc = run_cli("-C", str(repo_dir), "register", str(bundle), "--model", "policy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    version = proc.stdout.strip()
    assert git(repo_dir, "cat-file", "-t", version) == "tag"
    assert git(repo_dir, "status", "--porcelain", "--untracked-files=all") == ""


# -- refusals: exit 1, one line, nothing changed -----------------------------------------------------------
def _no_policy(b: Path) -> None:
    (b / "policy.pt").unlink()


def _no_metadata(b: Path) -> None:
    (b / "metadata.json").unlink()


def _no_algo(b: Path) -> None:
    meta = json.loads((b / "metadata.json").read_text())
    del meta["algo"]
    (b / "metadata.json").write_text(json.dumps(meta))


def _not_json(b: Path) -> None:
    (b / "metadata.json").write_text("{'algo': 'DQN',")


def _symlink_out(b: Path) -> None:
    secret = b.parent / "outside-secret.txt"
    secret.write_text("not part of the bundle\n")
    (b / "leak.txt").symlink_to(secret)


def _symlinked_policy(b: Path) -> None:
    real = b.parent / "real-policy.pt"
    (b / "policy.pt").rename(real)
    (b / "policy.pt").symlink_to(real)


def _reserved_name(b: Path) -> None:
    (b / "policy.pt.dvc").write_text("outs: []\n")


@pytest.mark.parametrize(
    ("breakage", "needle"),
    [
        (_no_policy, "policy.pt"),
        (_no_metadata, "metadata.json"),
        (_no_algo, "algo"),
        (_not_json, "not valid JSON"),
        (_symlink_out, "symbolic link"),
        (_symlinked_policy, "symbolic link"),
        (_reserved_name, "reserved"),
    ],
    ids=["no-policy", "no-metadata", "no-algo", "not-json", "symlink-out", "symlink-policy", "reserved"],
)
def test_broken_bundle_is_refused(
    registered: tuple[Path, str], make_bundle: Any, breakage: Any, needle: str
) -> None:
    repo, _ = registered
    bundle = make_bundle(5)
    breakage(bundle)
    before = snapshot(repo)

    proc = run_cli("register", str(bundle), "--model", "policy", cwd=repo)

    assert_refused(proc, needle)
    assert snapshot(repo) == before


@pytest.mark.parametrize("name", ["Policy", "a/b", "../x", "-x"])
def test_bad_model_name_is_refused(registered: tuple[Path, str], make_bundle: Any, name: str) -> None:
    repo, _ = registered
    bundle = make_bundle(5)
    before = snapshot(repo)
    proc = run_cli("register", str(bundle), f"--model={name}", cwd=repo)
    assert_refused(proc, "model name")
    assert snapshot(repo) == before
    assert not (repo / "x").exists() and not (repo.parent / "x").exists()


def test_bundle_path_that_does_not_exist_is_refused(registered: tuple[Path, str], tmp_path: Path) -> None:
    repo, _ = registered
    before = snapshot(repo)
    proc = run_cli("register", str(tmp_path / "no-such-bundle"), "--model", "policy", cwd=repo)
    assert_refused(proc, "no-such-bundle")
    assert snapshot(repo) == before


def test_bad_version_name_is_refused(registered: tuple[Path, str], make_bundle: Any) -> None:
    repo, _ = registered
    before = snapshot(repo)
    proc = run_cli("register", str(make_bundle(5)), "--model", "policy", "--version", "latest", cwd=repo)
    assert_refused(proc, "latest")
    assert snapshot(repo) == before


@pytest.mark.parametrize("how", ["modified", "untracked"])
def test_dirty_model_folder_is_refused(registered: tuple[Path, str], make_bundle: Any, how: str) -> None:
    repo, _ = registered
    if how == "modified":
        (repo / "models" / "policy" / "metadata.json").write_text('{"edited": true}')
    else:
        (repo / "models" / "policy" / "notes.txt").write_text("work in progress\n")
    before = snapshot(repo)
    assert before["status"]  # really dirty

    proc = run_cli("register", str(make_bundle(5)), "--model", "policy", cwd=repo)

    assert_refused(proc, "uncommitted changes")
    assert snapshot(repo) == before


def test_version_already_taken_is_refused(registered: tuple[Path, str], make_bundle: Any) -> None:
    repo, version = registered
    before = snapshot(repo)
    proc = run_cli("register", str(make_bundle(5)), "--model", "policy", "--version", version, cwd=repo)
    assert_refused(proc, version)
    assert snapshot(repo) == before


def test_version_taken_by_a_foreign_lightweight_tag_is_refused(
    registered: tuple[Path, str], make_bundle: Any
) -> None:
    repo, _ = registered
    git(repo, "tag", "v2030-01-01--00h00")
    before = snapshot(repo)
    proc = run_cli(
        "register", str(make_bundle(5)), "--model", "policy", "--version", "v2030-01-01--00h00", cwd=repo
    )
    assert_refused(proc, "v2030-01-01--00h00")
    assert snapshot(repo) == before


def test_unreachable_dvc_remote_leaves_nothing_behind(
    registered: tuple[Path, str], make_bundle: Any, tmp_path: Path
) -> None:
    repo, version = registered
    previous = files_under(repo / "models" / "policy")
    assert "policy.pt" in previous  # the previous version's bytes are checked out
    blocker = tmp_path / "remote-is-a-file"
    blocker.write_text("not a folder\n")
    config = repo / ".dvc" / "config"
    text, n = re.subn(r"(?m)^(\s*url\s*=\s*).*$", rf"\g<1>{blocker}", config.read_text())
    assert n == 1
    config.write_text(text)
    git(repo, "commit", "-q", "-am", "point the DVC remote at a file")
    before = snapshot(repo)
    new_bundle = make_bundle(7)

    proc = run_cli("register", str(new_bundle), "--model", "policy", cwd=repo)

    assert_refused(proc, "DVC remote")
    after = snapshot(repo)
    assert after == before
    assert git(repo, "tag", "--list").split() == [version]
    assert files_under(repo / "models" / "policy") == previous
    assert md5(repo / "models" / "policy" / "policy.pt") != md5(new_bundle / "policy.pt")
    assert blocker.read_text() == "not a folder\n"


def test_unreachable_dvc_remote_for_a_new_model_leaves_no_folder(
    registered: tuple[Path, str], make_bundle: Any, tmp_path: Path
) -> None:
    repo, _ = registered
    blocker = tmp_path / "remote-is-a-file"
    blocker.write_text("x")
    config = repo / ".dvc" / "config"
    config.write_text(re.sub(r"(?m)^(\s*url\s*=\s*).*$", rf"\g<1>{blocker}", config.read_text()))
    git(repo, "commit", "-q", "-am", "point the DVC remote at a file")
    before = snapshot(repo)

    proc = run_cli("register", str(make_bundle(7)), "--model", "fresh", cwd=repo)

    assert_refused(proc, "DVC remote")
    assert snapshot(repo) == before
    assert not (repo / "models" / "fresh").exists()
    assert "fresh" not in (repo / "models.yaml").read_text()


def test_not_a_registry_is_refused(tmp_path: Path, make_bundle: Any) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    git(plain, "init", "-q")
    proc = run_cli("register", str(make_bundle(1)), "--model", "policy", cwd=plain)
    assert_refused(proc, "gitreg init")
    assert sorted(os.listdir(plain)) == [".git"]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_traceback_on_request(registered: tuple[Path, str], tmp_path: Path, how: str) -> None:
    repo, _ = registered
    before = snapshot(repo)
    args = ["register", str(tmp_path / "missing"), "--model", "policy"]
    if how == "flag":
        proc = run_cli("--traceback", *args, cwd=repo)
    else:
        proc = run_cli(*args, cwd=repo, env={"GITREG_DEBUG": "1"})
    assert proc.returncode != 0
    assert "Traceback (most recent call last)" in proc.stderr
    assert "BundleError" in proc.stderr
    assert snapshot(repo) == before


# -- concurrency -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_registrations_at_once(repo_dir: Path, make_bundle: Any) -> None:
    bundles = [make_bundle(11), make_bundle(12)]
    env = {**os.environ}
    procs = [
        subprocess.Popen(
            [GITREG, "register", str(b), "--model", "policy"],
            cwd=repo_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for b in bundles
    ]
    results = [(p, *p.communicate(timeout=300)) for p in procs]

    succeeded = []
    for (proc, out, err), bundle in zip(results, bundles, strict=True):
        if proc.returncode == 0:
            version = out.strip()
            assert VERSION_RE.match(version), out
            succeeded.append((version, bundle))
        else:
            assert proc.returncode == 1, err
            assert "Traceback" not in err
            assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), err
    assert succeeded, [r[2] for r in results]
    versions = [v for v, _ in succeeded]
    assert len(set(versions)) == len(versions)
    assert sorted(git(repo_dir, "tag", "--list").split()) == sorted(versions)
    # Each tag pins the bundle it was made from.
    for version, bundle in succeeded:
        summary = tag_summary(repo_dir, version)
        assert {f.path: f.md5 for f in summary.files}["policy.pt"] == md5(bundle / "policy.pt")
        assert git(repo_dir, "show", f"{version}:models/policy/metadata.json") == (
            (bundle / "metadata.json").read_text()
        )
    fsck = subprocess.run(
        ["git", "fsck", "--full", "--strict", "--no-dangling"],
        cwd=repo_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert fsck.returncode == 0, fsck.stderr
    assert "error" not in fsck.stderr.lower() and "missing" not in fsck.stdout.lower()
    assert git(repo_dir, "status", "--porcelain", "--untracked-files=all") == ""


# -- DVC takes gitreg's md5s (no second read of the bytes) ---------------------------------------------
def _spy_dvc_hashing(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every local file DVC hashes itself (dvc_data's file_md5)."""
    import dvc_data.hashfile.hash as dvc_hash

    hashed: list[str] = []
    original = dvc_hash.file_md5

    def spy(path: Any, *args: Any, **kwargs: Any) -> Any:
        hashed.append(str(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(dvc_hash, "file_md5", spy)
    return hashed


def test_prehashed_register_matches_a_plain_dvc_add_and_push(
    registry: Any, repo_dir: Path, dvc_remote: Path, make_bundle: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """gitreg hands DVC the md5s it computed while copying: DVC reads no bundle file again, and
    the pointers, cache and remote objects are exactly those of `dvc add` + `dvc push`."""
    from dvc.repo import Repo as DvcRepo

    bundle = make_bundle(2, extra_files={"assets/vocab.txt": b"left\nright\n" * 50})
    hashed = _spy_dvc_hashing(monkeypatch)
    version = registry.register(bundle, "policy").version
    assert not [p for p in hashed if "models/policy" in p], hashed
    monkeypatch.undo()

    # The same files, added and pushed by DVC alone in a plain repository.
    plain = tmp_path / "plain"
    plain_remote = tmp_path / "plain-remote"
    for rel in ("policy.pt", "assets/vocab.txt"):
        (plain / "models/policy" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle / rel, plain / "models/policy" / rel)
    subprocess.run(["git", "init", "-q", str(plain)], check=True)
    DvcRepo.init(str(plain)).close()
    with DvcRepo(str(plain)) as repo:
        with repo.config.edit("repo") as conf:
            conf["remote"]["storage"] = {"url": str(plain_remote)}
            conf["core"]["remote"] = "storage"
        repo.add([str(plain / "models/policy" / r) for r in ("policy.pt", "assets/vocab.txt")])
        repo.push()

    for rel in ("policy.pt", "assets/vocab.txt"):
        ptr = f"models/policy/{rel}.dvc"
        assert git(repo_dir, "show", f"{version}:{ptr}") + "\n" == (plain / ptr).read_text()
        digest = md5(bundle / rel)
        ours, theirs = remote_object(dvc_remote, digest), remote_object(plain_remote, digest)
        assert ours.read_bytes() == theirs.read_bytes() == (bundle / rel).read_bytes()
        cache = Path("files/md5") / digest[:2] / digest[2:]
        ours_cached, theirs_cached = repo_dir / ".dvc/cache" / cache, plain / ".dvc/cache" / cache
        assert ours_cached.read_bytes() == (bundle / rel).read_bytes()
        assert ours_cached.stat().st_mode & 0o777 == theirs_cached.stat().st_mode & 0o777
    assert sorted(p.relative_to(dvc_remote) for p in dvc_remote.rglob("*") if p.is_file()) == sorted(
        p.relative_to(plain_remote) for p in plain_remote.rglob("*") if p.is_file()
    )
    assert git(repo_dir, "status", "--porcelain", "--untracked-files=all") == ""


def test_a_file_changed_after_gitreg_hashed_it_is_refused(
    registry: Any, repo_dir: Path, make_bundle: Any, monkeypatch: Any
) -> None:
    """The md5 handed to DVC is keyed by the copy's inode, mtime and size: if the copy changes
    before DVC tracks it, DVC hashes it itself, the digests differ and nothing is tagged."""
    from gitreg.errors import StorageError
    from gitreg.store import DvcStore

    before = snapshot(repo_dir)
    track = DvcStore.track

    def tamper(self: Any, paths: list[str], hashed: Any = None) -> None:
        target = repo_dir / "models/policy/policy.pt"
        target.write_bytes(target.read_bytes() + b"tampered")
        track(self, paths, hashed)

    monkeypatch.setattr(DvcStore, "track", tamper)
    with pytest.raises(StorageError, match="changed while it was being registered"):
        registry.register(make_bundle(3), "policy")
    assert snapshot(repo_dir) == before


def test_a_hardlink_cache_links_instead_of_copying(
    registry: Any, repo_dir: Path, dvc_remote: Path, make_bundle: Any
) -> None:
    """With `cache.type hardlink` the object enters the cache as a link to the registered file
    (one copy fewer); the pointer, the remote object and a clean tree are unchanged."""
    from dvc.repo import Repo as DvcRepo

    with DvcRepo(str(repo_dir)) as repo, repo.config.edit("repo") as conf:
        conf["cache"]["type"] = "hardlink"
    git(repo_dir, "commit", "-qam", "cache by hardlink")
    bundle = make_bundle(4)

    registry.register(bundle, "policy")

    digest = md5(bundle / "policy.pt")
    work = repo_dir / "models/policy/policy.pt"
    cached = repo_dir / ".dvc/cache/files/md5" / digest[:2] / digest[2:]
    assert work.stat().st_ino == cached.stat().st_ino
    assert work.read_bytes() == (bundle / "policy.pt").read_bytes()
    assert remote_object(dvc_remote, digest).read_bytes() == (bundle / "policy.pt").read_bytes()
    assert remote_object(dvc_remote, digest).stat().st_ino != cached.stat().st_ino
    assert git(repo_dir, "status", "--porcelain", "--untracked-files=all") == ""
