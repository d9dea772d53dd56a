"""End-to-end: `gitreg pull` materializes a version's bundle from the DVC cache or remote,
md5-verified, without touching the working tree; on failure nothing is left behind."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from gitreg.testing.cli import run_cli
from gitreg.testing.repos import git

EXTRA = "assets/zz/extra.bin"  # sorts after policy.pt: fetched last


def extra_bytes(seed: int) -> bytes:
    return bytes((i * 7 + seed) % 256 for i in range(3000))


def tree_bytes(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every regular file under ``folder`` (posix relative path -> bytes)."""
    result = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and not any(rel == s or rel.startswith(s + "/") for s in skip):
            result[rel] = p.read_bytes()
    return result


def repo_state(repo: Path) -> dict[str, object]:
    """What a pull must not change: HEAD, the branch, the index, git status, the files."""
    return {
        "head": git(repo, "rev-parse", "HEAD"),
        "branch": git(repo, "symbolic-ref", "HEAD"),
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "index": git(repo, "ls-files", "-s"),
        "files": tree_bytes(repo, skip=(".git", ".dvc")),
    }


def object_path(store: Path, data: bytes) -> Path:
    md5 = hashlib.md5(data).hexdigest()
    return store / "files" / "md5" / md5[:2] / md5[2:]


def register(registry, bundle: Path) -> str:
    return registry.register(bundle, "policy").version


@pytest.fixture
def bundle(make_bundle) -> Path:
    return make_bundle(1, extra_files={EXTRA: extra_bytes(1)})


def test_pull_into_out_is_byte_identical_and_leaves_the_repo_alone(repo_dir, registry, bundle, tmp_path):
    version = register(registry, bundle)
    before = repo_state(repo_dir)
    out = tmp_path / "pulled"

    proc = run_cli("pull", version, "--out", str(out), cwd=repo_dir)

    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).resolve() == out.resolve()
    assert "md5 verified" in proc.stderr
    got = tree_bytes(out)
    assert got == tree_bytes(bundle)
    assert set(got) == {"metadata.json", "policy.pt", EXTRA}  # no pointers, no .gitignore
    assert repo_state(repo_dir) == before


def test_pull_json_lists_every_file_with_its_digest(repo_dir, registry, bundle, tmp_path):
    import json

    version = register(registry, bundle)
    proc = run_cli("pull", version, "--out", str(tmp_path / "o"), "--json", cwd=repo_dir, check=True)
    data = json.loads(proc.stdout)
    assert data["version"] == version
    expected = {rel: (hashlib.md5(b).hexdigest(), len(b)) for rel, b in tree_bytes(bundle).items()}
    assert {f["path"]: (f["md5"], f["size"]) for f in data["files"]} == expected


def test_pull_defaults_to_a_version_folder_in_the_current_directory(repo_dir, registry, bundle, tmp_path):
    version = register(registry, bundle)
    before = repo_state(repo_dir)

    # in the repository itself: ./VERSION is ignored by git, nothing else changes
    run_cli("pull", version, cwd=repo_dir, check=True)
    assert tree_bytes(repo_dir / version) == tree_bytes(bundle)
    after = repo_state(repo_dir)
    after["files"] = {k: v for k, v in after["files"].items() if not k.startswith(version + "/")}
    assert after == before

    # elsewhere, with -C: the folder lands in the current directory, not in the repository
    work = tmp_path / "work"
    work.mkdir()
    shutil.rmtree(repo_dir / version)
    run_cli("-C", str(repo_dir), "pull", version, cwd=work, check=True)
    assert tree_bytes(work / version) == tree_bytes(bundle)
    assert not (repo_dir / version).exists()
    assert repo_state(repo_dir) == before


def test_pull_of_an_older_version_gets_its_bytes_without_a_checkout(
    repo_dir, registry, clock, make_bundle, tmp_path
):
    old_bundle = make_bundle(1, extra_files={EXTRA: extra_bytes(1)})
    old = register(registry, old_bundle)
    clock.advance(hours=1)
    new_bundle = make_bundle(2, extra_files={EXTRA: extra_bytes(2)})
    new = register(registry, new_bundle)
    assert old < new
    assert tree_bytes(old_bundle)["policy.pt"] != tree_bytes(new_bundle)["policy.pt"]
    before = repo_state(repo_dir)

    run_cli("pull", old, "--out", str(tmp_path / "old"), cwd=repo_dir, check=True)

    assert tree_bytes(tmp_path / "old") == tree_bytes(old_bundle)
    assert repo_state(repo_dir) == before
    assert git(repo_dir, "rev-parse", "HEAD") == git(repo_dir, "rev-list", "-n1", new)
    # the working tree still holds the newest bundle
    assert (repo_dir / "models/policy/policy.pt").read_bytes() == (new_bundle / "policy.pt").read_bytes()


def test_pull_fetches_from_the_remote_when_the_cache_is_gone(
    repo_dir, registry, bundle, dvc_remote, tmp_path
):
    version = register(registry, bundle)
    policy = (bundle / "policy.pt").read_bytes()
    assert object_path(dvc_remote, policy).is_file()
    shutil.rmtree(repo_dir / ".dvc" / "cache")
    before = repo_state(repo_dir)

    run_cli("pull", version, "--out", str(tmp_path / "o"), cwd=repo_dir, check=True)

    assert tree_bytes(tmp_path / "o") == tree_bytes(bundle)
    assert repo_state(repo_dir) == before


def _corrupt(path: Path) -> None:
    os.chmod(path, 0o644)  # DVC stores objects read-only
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the digest can tell
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("victim", ["policy.pt", EXTRA])
def test_corrupt_bytes_fail_with_an_md5_error_and_leave_nothing(
    repo_dir, registry, bundle, dvc_remote, tmp_path, victim
):
    version = register(registry, bundle)
    data = (bundle / victim).read_bytes()
    for store in (repo_dir / ".dvc" / "cache", dvc_remote):
        obj = object_path(store, data)
        assert obj.is_file(), obj
        _corrupt(obj)
    parent = tmp_path / "pulls"
    parent.mkdir()
    out = parent / "bundle"

    proc = run_cli("pull", version, "--out", str(out), cwd=repo_dir)

    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:")
    assert "md5" in lines[0]
    assert hashlib.md5(data).hexdigest() in lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert list(parent.iterdir()) == []  # no .partial leftovers


def test_bytes_missing_everywhere_fail_clearly(repo_dir, registry, bundle, dvc_remote, tmp_path):
    version = register(registry, bundle)
    data = (bundle / "policy.pt").read_bytes()
    for store in (repo_dir / ".dvc" / "cache", dvc_remote):
        object_path(store, data).unlink()
    parent = tmp_path / "pulls"
    parent.mkdir()
    out = parent / "bundle"

    proc = run_cli("pull", version, "--out", str(out), cwd=repo_dir)

    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "policy.pt" in lines[0]
    assert hashlib.md5(data).hexdigest() in lines[0]
    assert "cache" in lines[0] and "remote" in lines[0]
    assert "Traceback" not in proc.stderr
    assert list(parent.iterdir()) == []


def test_pull_refuses_a_non_empty_out_folder(repo_dir, registry, bundle, tmp_path):
    version = register(registry, bundle)
    out = tmp_path / "busy"
    (out / "sub").mkdir(parents=True)
    (out / "keep.txt").write_bytes(b"mine")
    (out / "sub" / "policy.pt").write_bytes(b"not yours")
    before = tree_bytes(out)

    proc = run_cli("pull", version, "--out", str(out), cwd=repo_dir)

    assert proc.returncode == 1
    assert "not empty" in proc.stderr
    assert tree_bytes(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt", "sub"]

    # an existing empty folder is fine
    empty = tmp_path / "empty"
    empty.mkdir()
    run_cli("pull", version, "--out", str(empty), cwd=repo_dir, check=True)
    assert tree_bytes(empty) == tree_bytes(bundle)


@pytest.mark.parametrize("version", ["v2020-01-01--00h00", "not-a-version"])
def test_pull_of_an_unknown_version_fails(repo_dir, registry, bundle, tmp_path, version):
    register(registry, bundle)
    out = tmp_path / "o"
    proc = run_cli("pull", version, "--out", str(out), cwd=repo_dir)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error:")
    assert version in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


# -- reading objects straight from the DVC cache and remote ------------------------------------------
@pytest.mark.parametrize("how", ["flipped", "truncated"])
def test_a_corrupt_object_in_the_folder_remote_is_refused_and_leaves_nothing(
    repo_dir, registry, bundle, dvc_remote, tmp_path, how
):
    """No cache: the object is read from the remote folder itself, hashed on the way and refused
    on any difference; not a byte of the bundle is left behind, the remote is not touched."""
    version = register(registry, bundle)
    data = (bundle / "policy.pt").read_bytes()
    shutil.rmtree(repo_dir / ".dvc" / "cache")
    obj = object_path(dvc_remote, data)
    if how == "flipped":
        _corrupt(obj)
    else:
        os.chmod(obj, 0o644)
        obj.write_bytes(data[: len(data) // 2])
    damaged = obj.read_bytes()
    parent = tmp_path / "pulls"
    parent.mkdir()

    proc = run_cli("pull", version, "--out", str(parent / "bundle"), cwd=repo_dir)

    assert proc.returncode == 1
    assert "md5" in proc.stderr and hashlib.md5(data).hexdigest() in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(parent.iterdir()) == []
    assert obj.read_bytes() == damaged
    assert not object_path(repo_dir / ".dvc" / "cache", data).exists()  # pull does not fill the cache


def test_a_corrupt_cache_copy_falls_back_to_the_remote(repo_dir, registry, bundle, dvc_remote, tmp_path):
    version = register(registry, bundle)
    _corrupt(object_path(repo_dir / ".dvc" / "cache", (bundle / "policy.pt").read_bytes()))

    run_cli("pull", version, "--out", str(tmp_path / "o"), cwd=repo_dir, check=True)

    assert tree_bytes(tmp_path / "o") == tree_bytes(bundle)


def test_pull_reads_the_cache_without_the_remote(repo_dir, registry, bundle, dvc_remote, tmp_path):
    version = register(registry, bundle)
    shutil.rmtree(dvc_remote)

    run_cli("pull", version, "--out", str(tmp_path / "o"), cwd=repo_dir, check=True)

    assert tree_bytes(tmp_path / "o") == tree_bytes(bundle)


def test_pull_from_a_bare_mirror_uses_the_remote_of_the_revision(registry, repo_dir, bundle, tmp_path):
    """The deploy agent pulls from a bare mirror: no working tree, no DVC cache; DVC's config
    comes from the version's commit."""
    from gitreg.registry import Registry

    version = register(registry, bundle)
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "clone", "-q", "--mirror", str(repo_dir), str(mirror))

    result = Registry(mirror).pull(version, tmp_path / "o")

    assert tree_bytes(tmp_path / "o") == tree_bytes(bundle)
    assert {f.path for f in result.files} == set(tree_bytes(bundle))


def test_no_remote_and_no_cache_fails_clearly(repo_dir, registry, bundle, tmp_path):
    from dvc.repo import Repo as DvcRepo

    version = register(registry, bundle)
    shutil.rmtree(repo_dir / ".dvc" / "cache")
    with DvcRepo(str(repo_dir)) as repo, repo.config.edit("repo") as conf:
        del conf["core"]["remote"]
    parent = tmp_path / "pulls"
    parent.mkdir()

    proc = run_cli("pull", version, "--out", str(parent / "o"), cwd=repo_dir)

    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and "neither the DVC cache nor the remote" in lines[0]
    assert "no usable DVC remote" in lines[0]
    assert list(parent.iterdir()) == []
