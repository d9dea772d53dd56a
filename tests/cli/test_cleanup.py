"""`gitreg cleanup`: retention planning (pure) and the end-to-end runs on real repos, a folder
DVC remote and (slow) an S3 remote served by moto."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gitreg import manifest as mf
from gitreg.errors import DirtyWorkingTree, GitregError, StorageError, VersionNotFound
from gitreg.metadata import FileDigest, ValidationRecord
from gitreg.registry import Registry, VersionInfo
from gitreg.retention import build_plan
from gitreg.testing.cli import run_cli
from gitreg.testing.lifecycle import set_retention
from gitreg.testing.repos import git

T0 = datetime(2025, 7, 6, 18, 51, tzinfo=UTC)


# -- helpers ------------------------------------------------------------------------------------
def policy_bytes(tag: str) -> bytes:
    return f"policy {tag} ".encode() * 500


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def objects(store: Path) -> set[str]:
    """md5s of the objects in a DVC 3 object store (remote folder or .dvc/cache)."""
    root = store / "files" / "md5"
    return {p.parent.name + p.name for p in root.glob("*/*") if p.is_file()} if root.exists() else set()


def mark_validated(reg: Registry, version: str) -> None:
    """A passing validation record, as CI would attach it (the real one needs torch)."""
    info = reg.get(version)
    record = ValidationRecord(version=version, passed=True, checked_at=reg.clock(), checked_by="ci")
    reg.git.add_note(info.tag_object, record.to_note())


def register(reg: Registry, make_bundle: Any, clock: Any, data: bytes, model: str = "policy") -> str:
    version = reg.register(make_bundle(policy=data), model).version
    clock.advance(days=1)
    return version


@pytest.fixture
def scenario(registry: Registry, make_bundle: Any, clock: Any) -> dict[str, Any]:
    """Seven versions a day apart: v0..v5 with distinct bytes, v6 with v1's bytes; keep_last 2;
    v2 (old) in production. Cleanup must archive v0, v1, v3, v4 and remove A, D, E only."""
    data = [policy_bytes(x) for x in "ABCDEF"] + [policy_bytes("B")]
    versions = [register(registry, make_bundle, clock, d) for d in data]
    registry.promote(versions[2], "production", direct=True, force=True)
    mark_validated(registry, versions[2])
    set_retention(registry, keep_last=2)
    return {
        "versions": versions,
        "md5": [md5(d) for d in data],
        "cleaned": [versions[i] for i in (0, 1, 3, 4)],
        "kept": [versions[i] for i in (2, 5, 6)],
        "removed": {md5(data[i]) for i in (0, 3, 4)},
        "stay": {md5(data[i]) for i in (1, 2, 5)},
    }


def archived(reg: Registry, model: str = "policy") -> list[str]:
    return list(mf.load(reg.manifest_path).model.models[model].archived)


# -- planning (pure) ----------------------------------------------------------------------------
def info(model: str, day: int, *md5s: str, now: datetime = T0) -> VersionInfo:
    when = now - timedelta(days=day)
    files = [FileDigest(path=f"f{i}.bin", md5=m, size=100 * (i + 1)) for i, m in enumerate(md5s)]
    files.append(FileDigest(path="metadata.json", md5=f"{day:032x}", size=10))
    return VersionInfo(
        version=when.strftime("v%Y-%m-%d--%Hh%M"),
        model=model,
        algorithm="DQN",
        framework="torchscript",
        created_at=when,
        registered_at=when,
        registered_by="t",
        status="registered",
        files=files,
    )


def manifest(text: str) -> mf.ManifestModel:
    return mf.loads("version: 1\nmodels:\n" + text).model


def test_keep_last_keeps_the_newest_and_every_stage_holder():
    vs = [info("p", d, f"{d:032x}") for d in range(5)]  # vs[0] newest
    m = manifest(
        f"  p:\n    path: models/p\n    retention: {{keep_last: 2}}\n"
        f"    stages: {{production: {vs[4].version}, staging: {vs[3].version}}}\n"
        f"    canary: {{version: {vs[2].version}, traffic: 5}}\n"
    )
    plan = build_plan(vs, m, T0)
    actions = {r.version: r.action for r in plan.rows}
    assert actions == {v.version: "keep" for v in vs}  # 2 newest + production + staging + canary
    m = manifest(
        f"  p:\n    path: models/p\n    retention: {{keep_last: 1}}\n"
        f"    stages: {{production: {vs[4].version}}}\n"
    )
    plan = build_plan(vs, m, T0)
    assert [r.action for r in plan.rows] == ["keep", "archive", "archive", "archive", "keep"]
    assert plan.rows[-1].reason == "holds production"
    assert plan.rows[0].reason == "among the newest 1"
    assert plan.rows[1].reason == "not among the newest 1"
    assert plan.versions_cleaned == 3 and plan.versions_kept == 2
    assert {o.md5 for o in plan.objects} == {f"{d:032x}" for d in (1, 2, 3)}
    assert plan.bytes_freed == 300  # metadata.json (in Git) is never counted nor removed


def test_max_age_and_keep_last_keep_a_version_when_either_keeps_it():
    vs = [info("p", d, f"{d:032x}") for d in (0, 1, 5, 10, 40)]
    age_only = manifest("  p:\n    path: models/p\n    retention: {max_age_days: 7}\n")
    assert [r.action for r in build_plan(vs, age_only, T0).rows] == ["keep"] * 3 + ["archive"] * 2
    both = manifest("  p:\n    path: models/p\n    retention: {keep_last: 4, max_age_days: 2}\n")
    plan = build_plan(vs, both, T0)
    assert [r.action for r in plan.rows] == ["keep"] * 4 + ["archive"]
    assert plan.rows[0].reason == "among the newest 4; younger than 2 days"
    assert plan.rows[-1].reason == "not among the newest 4 and older than 2 days"
    assert plan.rows[-1].age_days == 40.0


def test_models_without_retention_are_not_cleaned_and_their_bytes_are_protected():
    shared = "a" * 32
    vs = [info("p", 0, "0" * 32), info("p", 9, shared), info("q", 20, shared)]
    m = manifest("  p:\n    path: models/p\n    retention: {keep_last: 1}\n  q:\n    path: models/q\n")
    plan = build_plan(vs, m, T0)
    assert plan.unmanaged == ["q"]
    assert [r.version for r in plan.rows] == [vs[0].version, vs[1].version]
    row = plan.rows[1]
    assert row.action == "archive" and row.remove == [] and [s.md5 for s in row.shared] == [shared]
    assert "bytes shared with a kept version stay" in row.reason
    assert plan.objects == []
    # A retention block with no limit keeps everything.
    empty = manifest("  p:\n    path: models/p\n    retention: {}\n")
    assert build_plan(vs, empty, T0).rows == []


def test_pinned_bytes_stay_shared_removals_count_once_and_gone_archives_are_skipped():
    vs = [info("p", 0, "1" * 32), info("p", 1, "2" * 32), info("p", 2, "2" * 32), info("p", 3, "3" * 32)]
    m = manifest(
        f"  p:\n    path: models/p\n    retention: {{keep_last: 0}}\n    archived: [{vs[3].version}]\n"
    )
    plan = build_plan(vs, m, T0, pinned={"1" * 32}, present={"2" * 32})
    by = {r.version: r for r in plan.rows}
    assert by[vs[0].version].remove == [] and by[vs[0].version].action == "archive"  # pinned by HEAD
    assert [o.md5 for o in by[vs[1].version].remove] == ["2" * 32]
    assert by[vs[2].version].remove == []  # the same object, counted on one row
    assert vs[3].version not in by and plan.already_clean == 1  # archived, bytes gone
    assert [o.md5 for o in plan.objects] == ["2" * 32]
    # --delete-tags still has work for it: its tag.
    plan = build_plan(vs, m, T0, pinned={"1" * 32}, present={"2" * 32}, delete_tags=True)
    assert {r.action for r in plan.rows} == {"delete"} and len(plan.rows) == 4
    # An archived version whose bytes are still there is purged.
    plan = build_plan(vs, m, T0, present={"3" * 32})
    assert next(r for r in plan.rows if r.version == vs[3].version).action == "purge"


# -- end to end: folder remote ---------------------------------------------------------------------
def test_dry_run_shows_the_plan_and_changes_nothing_then_the_cli_runs_it(
    registry, scenario, repo_dir, dvc_remote
):
    head = git(repo_dir, "rev-parse", "HEAD")
    remote_before, cache_before = objects(dvc_remote), objects(repo_dir / ".dvc" / "cache")
    manifest_before = registry.manifest_path.read_bytes()

    result = registry.cleanup(dry_run=True)

    assert result.dry_run and result.commit is None
    plan = result.plan
    assert {r.version for r in plan.cleaned()} == set(scenario["cleaned"])
    assert {r.version for r in plan.rows if r.action == "keep"} == set(scenario["kept"])
    assert {o.md5 for o in plan.objects} == scenario["removed"]
    assert plan.bytes_freed == 3 * len(policy_bytes("A"))
    assert git(repo_dir, "rev-parse", "HEAD") == head
    assert registry.manifest_path.read_bytes() == manifest_before
    assert objects(dvc_remote) == remote_before and objects(repo_dir / ".dvc" / "cache") == cache_before
    assert git(repo_dir, "status", "--porcelain") == ""

    table = run_cli("cleanup", "--dry-run", cwd=repo_dir, check=True).stdout
    assert "dry run: would archive 4 versions and remove 3 objects" in table
    assert "holds production" in table and "not among the newest 2" in table
    data = json.loads(run_cli("cleanup", "--dry-run", "--json", cwd=repo_dir, check=True).stdout)
    assert data["dry_run"] is True and data["plan"]["versions_cleaned"] == 4
    assert git(repo_dir, "rev-parse", "HEAD") == head and objects(dvc_remote) == remote_before

    # The real run, from the CLI.
    data = json.loads(run_cli("cleanup", "--json", cwd=repo_dir, check=True).stdout)
    assert data["dry_run"] is False and data["objects_removed"] == 3
    assert sorted(data["archived"]) == sorted(scenario["cleaned"])
    assert data["commit"] == git(repo_dir, "rev-parse", "HEAD") != head
    text = run_cli("cleanup", cwd=repo_dir, check=True).stdout
    assert "Nothing to clean: 3 versions kept." in text
    assert "4 archived versions already cleaned" in text


def test_cleanup_archives_and_removes_only_unshared_bytes(registry, scenario, repo_dir, dvc_remote, tmp_path):
    versions = scenario["versions"]
    head = git(repo_dir, "rev-parse", "HEAD")

    result = registry.cleanup()

    # One commit on the current branch, with the versions archived (oldest first) and trailers.
    assert git(repo_dir, "rev-parse", "HEAD~1") == head
    assert result.commit == git(repo_dir, "rev-parse", "HEAD") and result.branch == "main"
    assert archived(registry) == scenario["cleaned"]
    message = git(repo_dir, "log", "-1", "--format=%B")
    assert message.startswith("cleanup: archive 4 versions of policy\n")
    trailers = git(repo_dir, "log", "-1", "--format=%(trailers:key=Gitreg-Version,valueonly)").split()
    assert sorted(trailers) == sorted(scenario["cleaned"])
    assert git(repo_dir, "diff", "--name-only", "HEAD~1", "HEAD") == mf.MANIFEST_FILE
    assert mf.load(registry.manifest_path).model.models["policy"].stages == {"production": versions[2]}

    # Bytes: A, D, E gone from the remote and the cache; B (shared), C (production), F stay.
    remote, cache = objects(dvc_remote), objects(repo_dir / ".dvc" / "cache")
    assert not scenario["removed"] & remote and not scenario["removed"] & cache
    assert scenario["stay"] <= remote and scenario["stay"] <= cache
    assert result.objects_removed == 3 and result.cache_objects_removed == 3
    assert result.bytes_freed == 3 * len(policy_bytes("A"))

    # Tags stay; the stage history records the archiving; check passes.
    assert set(versions) <= set(git(repo_dir, "tag", "--list").split())
    assert {c.version for c in registry.history("policy") if c.stage == "archived"} == set(
        scenario["cleaned"]
    )
    assert registry.check().ok, registry.check().problems
    assert run_cli("check", cwd=repo_dir).returncode == 0

    # Kept versions pull (the shared bytes too); a cleaned one fails clearly, leaving nothing.
    for v in (versions[6], versions[2], versions[5]):
        out = tmp_path / f"pull-{v}"
        run_cli("pull", v, "--out", str(out), cwd=repo_dir, check=True)
        assert (out / "policy.pt").exists()
    assert (tmp_path / f"pull-{versions[6]}" / "policy.pt").read_bytes() == policy_bytes("B")
    proc = run_cli("pull", versions[0], "--out", str(tmp_path / "gone"), cwd=repo_dir)
    assert proc.returncode == 1
    assert f"{versions[0]} is archived and `gitreg cleanup` may have removed its bytes" in proc.stderr
    assert "neither the DVC cache nor the remote" in proc.stderr
    assert not (tmp_path / "gone").exists()
    # The version sharing kept bytes is archived but still pulls.
    registry.pull(versions[1], tmp_path / "shared")

    # Running it again has nothing to do.
    again = registry.cleanup()
    assert again.commit is None and again.plan.cleaned() == [] and again.plan.already_clean == 4
    assert git(repo_dir, "rev-parse", "HEAD") == result.commit


def test_delete_tags_removes_tags_locally_and_on_the_remote(registry, scenario, repo_dir, bare_remote):
    git(repo_dir, "push", "-q", "origin", "main", "--tags")
    # First a plain cleanup: archived, tags kept. Then --delete-tags finishes the job.
    registry.cleanup()
    result = registry.cleanup(delete_tags=True, push=True)

    cleaned = scenario["cleaned"]
    assert sorted(result.tags_deleted) == sorted(cleaned)
    assert sorted(result.remote_tags_deleted) == sorted(cleaned)
    assert sorted(result.unlisted) == sorted(cleaned)
    local_tags = set(git(repo_dir, "tag", "--list").split())
    remote_tags = {
        line.split("refs/tags/")[1] for line in git(bare_remote, "show-ref", "--tags").splitlines()
    }
    for tags in (local_tags, remote_tags):
        assert not set(cleaned) & tags and set(scenario["kept"]) <= tags
    assert archived(registry) == []  # `gitreg check` wants every archived entry to be a tag
    assert registry.check().ok, registry.check().problems
    assert git(repo_dir, "log", "-1", "--format=%s") == "cleanup: delete 4 versions of policy"
    assert git(bare_remote, "rev-parse", "main") == git(repo_dir, "rev-parse", "HEAD") and result.pushed
    with pytest.raises(VersionNotFound):
        registry.get(cleaned[0])
    assert {v.version for v in registry.versions()} == set(scenario["kept"])


def test_delete_tags_in_one_go_commits_the_record_even_when_models_yaml_does_not_change(
    registry, scenario, repo_dir, dvc_remote
):
    before = registry.manifest_path.read_bytes()
    result = registry.cleanup(delete_tags=True)
    assert result.commit == git(repo_dir, "rev-parse", "HEAD")
    assert registry.manifest_path.read_bytes() == before  # never archived: nothing to unlist
    assert "Gitreg-Stage: deleted" in git(repo_dir, "log", "-1", "--format=%B")
    assert sorted(result.tags_deleted) == sorted(scenario["cleaned"])
    assert not scenario["removed"] & objects(dvc_remote)
    assert registry.check().ok
    # The commit names each deleted tag object: a deleted tag can be restored from it.
    row = next(r for r in result.plan.rows if r.version == scenario["cleaned"][0])
    assert f"{row.version}  tag {row.tag_object}" in git(repo_dir, "log", "-1", "--format=%B")
    git(repo_dir, "update-ref", f"refs/tags/{row.version}", row.tag_object)
    assert registry.get(row.version).model == "policy"


def test_max_age_days_cleans_what_is_older(registry, make_bundle, clock, repo_dir, dvc_remote):
    data = [policy_bytes(str(i)) for i in range(5)]
    versions = [register(registry, make_bundle, clock, d) for d in data]  # ages 5, 4, 3, 2, 1 days
    set_retention(registry, max_age_days=3)

    result = registry.cleanup()

    assert archived(registry) == versions[:3]  # 5, 4 and 3 days old: not younger than 3 days
    assert [r.reason for r in result.plan.rows if r.action == "archive"] == ["older than 3 days"] * 3
    assert {md5(d) for d in data[:3]}.isdisjoint(objects(dvc_remote))
    assert {md5(d) for d in data[3:]} <= objects(dvc_remote)

    # Both limits: a version is kept if EITHER keeps it.
    set_retention(registry, keep_last=1, max_age_days=1)
    clock.advance(hours=1)
    plan = registry.cleanup(dry_run=True).plan
    assert [r.version for r in plan.cleaned()] == [versions[3]]


def test_bytes_removed_then_registered_again_are_uploaded_again(registry, make_bundle, clock, dvc_remote):
    old = register(registry, make_bundle, clock, policy_bytes("X"))
    register(registry, make_bundle, clock, policy_bytes("Y"))
    set_retention(registry, keep_last=1)
    registry.cleanup()
    assert md5(policy_bytes("X")) not in objects(dvc_remote)

    again = registry.register(make_bundle(policy=policy_bytes("X")), "policy")

    assert again.uploaded == 1  # DVC's index of the remote was dropped with the objects
    assert md5(policy_bytes("X")) in objects(dvc_remote)
    assert registry.pull(again.version, registry.root.parent / "again").files
    assert old in archived(registry)


def test_a_failure_after_the_commit_is_safe_and_a_rerun_finishes(
    registry, scenario, repo_dir, dvc_remote, monkeypatch
):
    from gitreg.store import DvcStore

    def broken(self, md5s):
        raise StorageError("the remote went away", "retry")

    with monkeypatch.context() as m:
        m.setattr(DvcStore, "remove_objects", broken)
        with pytest.raises(StorageError):
            registry.cleanup()
    commit = git(repo_dir, "rev-parse", "HEAD")
    assert archived(registry) == scenario["cleaned"]  # archived first ...
    assert scenario["removed"] <= objects(dvc_remote)  # ... bytes still there: a safe state

    result = registry.cleanup()

    assert result.commit is None and git(repo_dir, "rev-parse", "HEAD") == commit
    assert {r.action for r in result.plan.cleaned()} == {"purge"}
    assert len(result.plan.cleaned()) == 3  # v1's bytes are shared: nothing left to do for it
    assert not scenario["removed"] & objects(dvc_remote)


def test_a_refused_push_removes_no_bytes(registry, scenario, repo_dir, bare_remote, dvc_remote, tmp_path):
    git(repo_dir, "push", "-q", "origin", "main", "--tags")
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(bare_remote), str(other)], check=True)
    (other / "README.md").write_text("someone else\n")
    git(other, "add", "README.md")
    git(other, "commit", "-q", "-m", "elsewhere")
    git(other, "push", "-q", "origin", "main")

    with pytest.raises(GitregError) as e:
        registry.cleanup(push=True)

    assert "the push to origin failed" in e.value.message and "no bytes were removed" in e.value.hint
    assert scenario["removed"] <= objects(dvc_remote)


def test_refusals_and_no_policy(registry, make_bundle, clock, repo_dir, dvc_remote):
    for i in range(3):
        register(registry, make_bundle, clock, policy_bytes(str(i)))
    result = registry.cleanup()
    assert result.plan.policies == [] and result.plan.unmanaged == ["policy"] and result.commit is None
    assert "No model has a retention policy" in run_cli("cleanup", cwd=repo_dir, check=True).stdout

    set_retention(registry, keep_last=0)  # even the newest: but HEAD's bytes stay for `dvc pull`
    with registry.manifest_path.open("a") as f:
        f.write("# an edit in progress\n")
    with pytest.raises(DirtyWorkingTree):
        registry.cleanup()
    git(repo_dir, "checkout", "--", mf.MANIFEST_FILE)
    git(repo_dir, "remote", "remove", "origin")
    with pytest.raises(GitregError, match="no Git remote"):
        registry.cleanup(push=True)
    assert len(archived(registry)) == 0

    result = registry.cleanup()
    assert len(archived(registry)) == 3
    assert objects(dvc_remote) == {md5(policy_bytes("2"))}  # the checked-out pointer's bytes
    assert result.objects_removed == 2


# -- end to end: S3 (moto) ---------------------------------------------------------------------------
@pytest.mark.slow
def test_cleanup_deletes_the_object_keys_from_an_s3_remote(tmp_path, moto_s3, make_bundle, clock):
    bucket = moto_s3.make_bucket("gitreg-cleanup")
    path = tmp_path / "s3reg"
    Registry.init(path, remote=f"s3://{bucket}/store", endpoint_url=moto_s3.endpoint, ci="none")
    reg = Registry(path, clock=clock)
    data = [policy_bytes(f"s3-{i}") for i in range(3)] + [policy_bytes("s3-0")]
    versions = [register(reg, make_bundle, clock, d) for d in data]
    set_retention(reg, keep_last=1)

    def keys() -> set[str]:
        listing = moto_s3.client().list_objects_v2(Bucket=bucket, Prefix="store/")
        return {o["Key"] for o in listing.get("Contents", [])}

    def key(d: bytes) -> str:
        h = md5(d)
        return f"store/files/md5/{h[:2]}/{h[2:]}"

    assert {key(d) for d in data} <= keys()
    assert reg.cleanup(dry_run=True).plan.bytes_freed == 2 * len(data[1])
    assert {key(d) for d in data} <= keys()

    result = reg.cleanup()

    assert result.objects_removed == 2
    assert keys() == {key(data[0])}  # v0's bytes are v3's: they stay
    assert archived(reg) == versions[:3]
    assert reg.pull(versions[3], tmp_path / "kept").files
    with pytest.raises(StorageError, match="is archived"):
        reg.pull(versions[1], tmp_path / "gone")
    assert reg.check().ok
