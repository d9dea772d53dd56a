"""End-to-end on an S3 DVC remote (moto_server on 127.0.0.1): init, register, pull from S3
with an empty cache, validate; and a registration that cannot reach S3 leaves no trace."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path

import pytest

from conftest import free_port, git, run_cli

pytestmark = pytest.mark.slow


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def bucket_keys(moto_s3, bucket: str, prefix: str) -> set[str]:
    keys: set[str] = set()
    paginator = moto_s3.client().get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys.update(o["Key"] for o in page.get("Contents", []))
    return keys


def test_register_pull_and_validate_through_s3(moto_s3, make_bundle, tmp_path):
    bucket = moto_s3.make_bucket(f"gitreg-{uuid.uuid4().hex[:12]}")
    repo = tmp_path / "s3reg"
    repo.mkdir()

    run_cli(
        "init",
        "--remote",
        f"s3://{bucket}/models/reg",
        "--endpoint-url",
        moto_s3.endpoint,
        cwd=repo,
        check=True,
    )
    config = (repo / ".dvc" / "config").read_text()
    assert f"s3://{bucket}/models/reg" in config
    assert moto_s3.endpoint in config
    assert bucket_keys(moto_s3, bucket, "") == set()

    bundle = make_bundle(3, extra_files={"assets/vocab.txt": b"left\nright\n" * 100})
    reg = run_cli("register", str(bundle), "--model", "policy", cwd=repo, check=True)
    version = reg.stdout.strip()
    assert git(repo, "tag", "--list", version) == version

    # every DVC-tracked file is an object under the prefix, named by its md5
    keys = bucket_keys(moto_s3, bucket, "models/reg/")
    for rel in ("policy.pt", "assets/vocab.txt"):
        md5 = hashlib.md5((bundle / rel).read_bytes()).hexdigest()
        assert f"models/reg/files/md5/{md5[:2]}/{md5[2:]}" in keys
    assert bucket_keys(moto_s3, bucket, "") == keys  # nothing outside the prefix
    body = moto_s3.client().get_object(Bucket=bucket, Key=min(k for k in keys if "md5" in k))["Body"]
    assert body.read() in {(bundle / r).read_bytes() for r in ("policy.pt", "assets/vocab.txt")}

    # with no local cache, the bytes come from S3
    shutil.rmtree(repo / ".dvc" / "cache")
    status_before = git(repo, "status", "--porcelain")
    out = tmp_path / "pulled"
    run_cli("pull", version, "--out", str(out), cwd=repo, check=True)
    assert tree_bytes(out) == tree_bytes(bundle)
    assert git(repo, "status", "--porcelain") == status_before

    shutil.rmtree(repo / ".dvc" / "cache", ignore_errors=True)
    val = run_cli("validate", version, cwd=repo)
    assert val.returncode == 0, val.stdout + val.stderr
    assert "PASSED" in val.stdout


def test_register_fails_cleanly_when_s3_is_unreachable(make_bundle, tmp_path):
    port = free_port()  # nothing listens here
    repo = tmp_path / "deadreg"
    repo.mkdir()
    run_cli(
        "init",
        "--remote",
        "s3://nowhere/prefix",
        "--endpoint-url",
        f"http://127.0.0.1:{port}",
        cwd=repo,
        check=True,
    )
    head = git(repo, "rev-parse", "HEAD")
    status = git(repo, "status", "--porcelain", "--untracked-files=all")

    # one attempt per request: the outcome is the same, minus ~10 s of connection retries
    proc = run_cli(
        "register", str(make_bundle(1)), "--model", "policy", cwd=repo, env={"AWS_MAX_ATTEMPTS": "1"}
    )

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error:")
    assert "Traceback" not in proc.stderr
    assert "remote" in proc.stderr
    assert git(repo, "tag", "--list") == ""
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "rev-list", "--count", "HEAD") == "1"
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == status
    assert not (repo / "models" / "policy").exists()
