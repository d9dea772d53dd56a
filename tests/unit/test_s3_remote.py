"""End-to-end on an S3 DVC remote (moto_server on 127.0.0.1): init, register, pull from S3
with an empty cache, validate; and a registration that cannot reach S3 leaves no trace."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path

import pytest

from gitreg.testing.cli import run_cli
from gitreg.testing.net import free_port
from gitreg.testing.repos import git

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


# -- the streamed GET of pull, the upload's bounded concurrency ----------------------------------------
BIG = "weights/big.bin"


@pytest.fixture
def s3_registered(moto_s3, make_bundle, tmp_path):
    """A registry on a fresh bucket with one version holding a 3 MiB file; no local cache."""
    import os

    from gitreg.registry import Registry

    bucket = moto_s3.make_bucket(f"gitreg-{uuid.uuid4().hex[:12]}")
    repo = tmp_path / "s3reg"
    Registry.init(repo, remote=f"s3://{bucket}/reg", ci="none", endpoint_url=moto_s3.endpoint)
    data = os.urandom(3 << 20)
    bundle = make_bundle(5, extra_files={BIG: data})
    version = Registry(repo).register(bundle, "policy").version
    shutil.rmtree(repo / ".dvc" / "cache")
    md5 = hashlib.md5(data).hexdigest()
    return repo, version, bundle, bucket, f"reg/files/md5/{md5[:2]}/{md5[2:]}"


def test_pull_resumes_a_dropped_s3_stream_from_the_byte_reached(s3_registered, tmp_path, monkeypatch):
    from s3fs.core import S3_RETRYABLE_ERRORS

    from gitreg.registry import Registry
    from gitreg.store import s3

    repo, version, bundle, _bucket, key = s3_registered
    opened: list[int] = []  # for the big object: the offset of each GET
    original_open = s3.S3Stream._open

    async def flaky_open(self):
        await original_open(self)
        if self._key != key:
            return
        opened.append(self._received)
        body, reads = self._body, {"n": 0}
        real_read = body.read

        async def read(n):
            reads["n"] += 1
            if len(opened) == 1 and reads["n"] == 3:
                raise S3_RETRYABLE_ERRORS[0]("connection dropped")
            return await real_read(n)

        body.read = read

    monkeypatch.setattr(s3.S3Stream, "_open", flaky_open)
    Registry(repo).pull(version, tmp_path / "o")

    assert tree_bytes(tmp_path / "o") == tree_bytes(bundle)
    assert len(opened) == 2 and 0 < opened[1] < (3 << 20)  # resumed by a ranged GET where it stopped


def test_a_corrupt_s3_object_is_refused_and_leaves_nothing(s3_registered, moto_s3, tmp_path):
    repo, version, bundle, bucket, key = s3_registered
    data = bytearray((bundle / BIG).read_bytes())
    data[len(data) // 2] ^= 0xFF
    moto_s3.client().put_object(Bucket=bucket, Key=key, Body=bytes(data))
    parent = tmp_path / "pulls"
    parent.mkdir()

    proc = run_cli("pull", version, "--out", str(parent / "o"), cwd=repo)

    assert proc.returncode == 1
    assert "md5" in proc.stderr and "".join(key.split("/")[-2:]) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(parent.iterdir()) == []


def test_uploads_to_s3_send_small_parts_a_few_at_once(s3_registered):
    """s3fs holds every part in flight in memory: gitreg sends UPLOAD_JOBS parts of
    UPLOAD_PART_BYTES at once, or the remote's own `jobs`."""
    from gitreg.store import DvcStore
    from gitreg.store.s3 import UPLOAD_JOBS, multipart_remote

    repo = s3_registered[0]
    store = DvcStore(repo)
    with store._repo() as dvc:
        odb, jobs = multipart_remote(dvc)
        assert jobs == UPLOAD_JOBS
        assert odb.oid_to_path("0" * 32).endswith("/reg/files/md5/00/" + "0" * 30)
        with dvc.config.edit("repo") as conf:
            conf["remote"]["storage"]["jobs"] = 8
    with store._repo() as dvc:
        assert multipart_remote(dvc)[1] == 8  # the user's choice


def test_s3_objects_already_there_are_not_sent_again(s3_registered, moto_s3):
    from gitreg.registry import Registry

    repo, _version, bundle, bucket, key = s3_registered
    before = moto_s3.client().head_object(Bucket=bucket, Key=key)["LastModified"]

    again = Registry(repo).register(bundle, "policy")

    assert again.uploaded == 0
    assert moto_s3.client().head_object(Bucket=bucket, Key=key)["LastModified"] == before
    body = moto_s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == (bundle / BIG).read_bytes()


def test_a_big_file_goes_up_in_small_parts(moto_s3, make_bundle, tmp_path):
    import os

    from gitreg.registry import Registry
    from gitreg.store.s3 import UPLOAD_PART_BYTES

    bucket = moto_s3.make_bucket(f"gitreg-{uuid.uuid4().hex[:12]}")
    repo = tmp_path / "s3big"
    Registry.init(repo, remote=f"s3://{bucket}/reg", ci="none", endpoint_url=moto_s3.endpoint)
    data = os.urandom(2 * UPLOAD_PART_BYTES + 12345)
    bundle = make_bundle(6, extra_files={BIG: data})

    result = Registry(repo).register(bundle, "policy")

    md5 = hashlib.md5(data).hexdigest()
    key = f"reg/files/md5/{md5[:2]}/{md5[2:]}"
    head = moto_s3.client().head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload of three parts
    assert moto_s3.client().get_object(Bucket=bucket, Key=key)["Body"].read() == data
    assert result.uploaded == 2  # the big file and policy.pt


# -- pull without opening a DVC Repo (plain S3 remote) ---------------------------------------------
def test_an_s3_pull_reads_dvc_config_only_and_opens_no_dvc_repo(s3_registered, tmp_path):
    """A pull from a plain S3 remote builds the remote's filesystem from the DVC config alone:
    `dvc.repo` is never imported (it costs more than the rest of a small pull)."""
    import subprocess
    import sys

    repo, version, bundle, _bucket, _key = s3_registered
    out = tmp_path / "o"
    code = (
        "import sys; from gitreg.registry import Registry; "
        "Registry(sys.argv[1]).pull(sys.argv[2], sys.argv[3]); "
        "print(sorted(m for m in sys.modules if m == 'dvc.repo' or m.startswith('dvc.repo.')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(repo), version, str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert tree_bytes(out) == tree_bytes(bundle)


def test_an_s3_pull_takes_the_endpoint_from_config_local(s3_registered, moto_s3, tmp_path):
    """DVC's merged config counts: a remote setting in `.dvc/config.local` (not committed)
    is used as `dvc pull` would use it."""
    from gitreg.registry import Registry

    repo, version, bundle, _bucket, _key = s3_registered
    config = repo / ".dvc" / "config"
    text = config.read_text()
    assert moto_s3.endpoint in text
    config.write_text("\n".join(line for line in text.splitlines() if "endpointurl" not in line) + "\n")
    (repo / ".dvc" / "config.local").write_text(
        f"['remote \"storage\"']\n    endpointurl = {moto_s3.endpoint}\n"
    )

    Registry(repo).pull(version, tmp_path / "o")

    assert tree_bytes(tmp_path / "o") == tree_bytes(bundle)


def test_an_s3_pull_reads_a_moved_cache_first_and_falls_back_to_s3_on_a_bad_copy(
    moto_s3, make_bundle, tmp_path
):
    """With `cache.dir` set (relative to .dvc/, as `dvc cache dir` writes it), the cache there
    is read first: it serves the bytes while the S3 object is gone; a corrupt copy there is
    passed over for the good bytes on S3."""
    import os

    from gitreg.errors import DigestMismatch
    from gitreg.registry import Registry
    from gitreg.store import DvcStore

    bucket = moto_s3.make_bucket(f"gitreg-{uuid.uuid4().hex[:12]}")
    repo = tmp_path / "s3cache"
    Registry.init(repo, remote=f"s3://{bucket}/reg", ci="none", endpoint_url=moto_s3.endpoint)
    config = repo / ".dvc" / "config"
    config.write_text(config.read_text() + "[cache]\n    dir = ../../elsewhere-cache\n")
    data = os.urandom(1 << 20)
    bundle = make_bundle(7, extra_files={BIG: data})
    version = Registry(repo).register(bundle, "policy").version
    md5 = hashlib.md5(data).hexdigest()
    cached = tmp_path / "elsewhere-cache" / "files" / "md5" / md5[:2] / md5[2:]
    assert cached.is_file() and not (repo / ".dvc" / "cache").exists()
    assert DvcStore(repo)._direct_sources("HEAD") is not None
    key = f"reg/files/md5/{md5[:2]}/{md5[2:]}"
    s3 = moto_s3.client()

    # the S3 object is gone: the moved cache serves the bytes
    s3.delete_object(Bucket=bucket, Key=key)
    Registry(repo).pull(version, tmp_path / "from-cache")
    assert tree_bytes(tmp_path / "from-cache") == tree_bytes(bundle)

    # a corrupt cache copy and no S3 object: refused, nothing left
    os.chmod(cached, 0o644)
    cached.write_bytes(b"x" + data[1:])
    with pytest.raises(DigestMismatch):
        Registry(repo).pull(version, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()

    # the good bytes back on S3: the corrupt copy is passed over
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    Registry(repo).pull(version, tmp_path / "from-s3")
    assert tree_bytes(tmp_path / "from-s3") == tree_bytes(bundle)


def test_remotes_other_than_plain_s3_take_the_dvc_repo_path(s3_registered, tmp_path):
    """A version-aware S3 remote (or a local folder) is no md5 object store gitreg reads
    directly: `_direct_sources` declines and DVC's Repo handles it."""
    from gitreg.registry import Registry
    from gitreg.store import DvcStore

    repo = s3_registered[0]
    assert DvcStore(repo)._direct_sources("HEAD") is not None
    config = repo / ".dvc" / "config"
    config.write_text(config.read_text().replace("url = s3://", "version_aware = true\n    url = s3://"))
    assert DvcStore(repo)._direct_sources("HEAD") is None

    local = tmp_path / "localreg"
    Registry.init(local, remote=str(tmp_path / "remote-folder"), ci="none")
    assert DvcStore(local)._direct_sources("HEAD") is None
