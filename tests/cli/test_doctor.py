"""`gitreg doctor`: every check reports, --fix repairs what it can, exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gitreg.testing.cli import run_cli
from gitreg.testing.lifecycle import mark_validated
from gitreg.testing.repos import git, promote_pushed, register_pushed


def tiny(make_bundle: Callable[..., Path], n: int = 0) -> Path:
    return make_bundle(n, policy=f"weights-{n}".encode())


def checks(report: Any, *, open_only: bool = True) -> set[str]:
    return {f.check for f in report.findings if not (open_only and (f.fixed or f.severity == "info"))}


def test_clean_registry_is_ok(registry: Any, make_bundle: Callable[..., Path]) -> None:
    registry.register(tiny(make_bundle), "policy", push=True)
    report = registry.doctor(remote_check=True)
    assert report.ok, report.findings
    assert report.versions == 1
    assert not registry.git.git_dir.joinpath("gitreg", "journal").exists() or not any(
        registry.git.git_dir.joinpath("gitreg", "journal").iterdir()
    )


def test_unpushed_tag_reported_and_pushed_only_with_push(
    registry: Any, make_bundle: Callable[..., Path], bare_remote: Path
) -> None:
    r = registry.register(tiny(make_bundle), "policy")
    report = registry.doctor()
    assert not report.ok and checks(report) == {"tag-not-pushed"}
    assert registry.doctor(fix=True).ok is False  # --fix does not push unless asked
    assert registry.doctor(fix=True, push=True).ok
    assert r.version in git(bare_remote, "tag", "--list")


def test_missing_bytes_on_dvc_remote(
    registry: Any, make_bundle: Callable[..., Path], dvc_remote: Path
) -> None:
    registry.register(tiny(make_bundle), "policy", push=True)
    assert registry.doctor(remote_check=True).ok
    shutil.rmtree(dvc_remote / "files")
    dvc_remote.mkdir(exist_ok=True)
    report = registry.doctor(remote_check=True)
    assert checks(report) == {"remote-bytes"}
    assert registry.doctor().ok  # without --remote-check the remote is not read


def test_dvc_gc_workspace_only_loses_production_and_doctor_says_so(
    registry: Any, make_bundle: Callable[..., Path], dvc_remote: Path
) -> None:
    """`dvc gc -w -c` (a standard DVC command) keeps only the checked-out commit's bytes:
    production's go. `gitreg doctor`, no flags, reports them with exit 1; --offline does not ask."""
    old = register_pushed(registry, tiny(make_bundle, 1), "v2025-07-06--18h51")
    mark_validated(registry.root, old)
    promote_pushed(registry, old)
    register_pushed(registry, tiny(make_bundle, 2), "v2025-07-07--09h00")  # HEAD: the newer one
    ok = run_cli("-C", str(registry.root), "doctor", "--json")
    assert ok.returncode == 0, ok.stdout
    assert json.loads(ok.stdout)["bytes_checked"] == 1  # production only: the other holds no stage
    subprocess.run([sys.executable, "-m", "dvc", "gc", "-w", "-c", "-f"], cwd=registry.root, check=True)
    bad = run_cli("-C", str(registry.root), "doctor")
    assert bad.returncode == 1
    line = next(x for x in bad.stdout.splitlines() if "remote-bytes" in x)
    assert old in line and "not on the DVC remote" in line
    assert "dvc gc --all-tags --all-branches -c" in bad.stdout  # the hint names the safe form
    offline = run_cli("-C", str(registry.root), "doctor", "--offline", "--json")
    assert offline.returncode == 0 and json.loads(offline.stdout)["bytes_checked"] == 0


def test_tag_on_a_commit_without_its_pointers(registry: Any, make_bundle: Callable[..., Path]) -> None:
    r = registry.register(tiny(make_bundle), "policy", push=True)
    msg = git(registry.root, "tag", "-l", "--format=%(contents)", r.version)
    first = git(registry.root, "rev-list", "--max-parents=0", "HEAD")
    git(registry.root, "tag", "-d", r.version)
    git(registry.root, "tag", "-a", "--cleanup=verbatim", "-m", msg, r.version, first)
    report = registry.doctor()
    assert "pointer" in checks(report)
    assert any(f.severity == "error" and f.subject == r.version for f in report.findings)


def test_broken_manifest_and_unreadable_note(registry: Any, make_bundle: Callable[..., Path]) -> None:
    r = registry.register(tiny(make_bundle), "policy", push=True)
    git(registry.root, "notes", "--ref=refs/notes/gitreg", "add", "-m", "not json", r.version)
    (registry.root / "models.yaml").write_text("models: [1, 2\n")
    report = registry.doctor()
    assert {"manifest", "note"} <= checks(report)


def test_lock_notes_temp_files_and_git_locks_are_cleared(
    registry: Any, make_bundle: Callable[..., Path]
) -> None:
    registry.register(tiny(make_bundle), "policy", push=True)
    gd = registry.git.git_dir
    (gd / "gitreg.lock").write_text("pid 999999 since 2025-01-01T00:00:00+00:00")
    (gd / "index.lock").write_text("")
    (registry.root / ".models.yaml.abc.tmp").write_text("half")
    report = registry.doctor()
    assert checks(report) == {"stale-lock", "git-lock-file", "temp-file"}
    fixed = registry.doctor(fix=True)
    assert fixed.ok, fixed.findings
    assert {f.check for f in fixed.findings if f.fixed} == {"stale-lock", "git-lock-file", "temp-file"}
    assert not (gd / "index.lock").exists()
    assert (gd / "gitreg.lock").read_text() == ""
    assert registry.doctor().ok


def test_untagged_register_commit_without_journal_is_reset(
    registry: Any, make_bundle: Callable[..., Path]
) -> None:
    r = registry.register(tiny(make_bundle), "policy", push=True)
    head_before = git(registry.root, "rev-parse", "HEAD")
    # What an older gitreg killed between commit and tag leaves: a commit, no tag.
    (registry.root / "models/policy/metadata.json").write_text(json.dumps({"algo": "X"}))
    git(registry.root, "add", "-A", "models")
    git(registry.root, "commit", "-q", "-m", "register policy v2030-01-01--00h00")
    report = registry.doctor()
    assert checks(report) == {"untagged-register-commit"}
    assert registry.doctor(fix=True).ok
    assert git(registry.root, "rev-parse", "HEAD") == head_before
    assert git(registry.root, "status", "--porcelain") == ""
    assert registry.get(r.version).version == r.version


def test_cli_exit_codes_and_json(registry: Any, make_bundle: Callable[..., Path]) -> None:
    registry.register(tiny(make_bundle), "policy")
    bad = run_cli("-C", str(registry.root), "doctor", "--json")
    assert bad.returncode == 1
    data = json.loads(bad.stdout)
    assert data["ok"] is False and data["findings"][0]["check"] == "tag-not-pushed"
    assert run_cli("-C", str(registry.root), "doctor", "--push").returncode == 1  # --push needs --fix
    good = run_cli("-C", str(registry.root), "doctor", "--fix", "--push")
    assert good.returncode == 0, good.stderr
    assert "fixed" in good.stdout and "ok:" in good.stdout


def test_stale_list_cache_temp_files_are_removed_fresh_ones_kept(registry: Any) -> None:
    import os
    import time

    folder = registry.git.git_dir / "gitreg"
    folder.mkdir(parents=True, exist_ok=True)
    stale, fresh = folder / ".list-cache-a1.tmp", folder / ".list-cache-b2.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    report = registry.doctor()
    found = [f for f in report.findings if f.check == "temp-file"]
    assert [f.subject for f in found] == [str(stale)] and found[0].severity == "info"
    assert report.ok  # information only
    registry.doctor(fix=True)
    assert not stale.exists() and fresh.exists()


def test_half_written_journals_are_removed(registry: Any) -> None:
    """A command killed while writing its journal had changed nothing yet: the temp goes."""
    leftovers = []
    for folder in ("journal", "manifest-journal"):
        d = registry.git.git_dir / "gitreg" / folder
        d.mkdir(parents=True, exist_ok=True)
        leftovers.append(d / ".4242.json.x1y2.tmp")
        leftovers[-1].write_bytes(b'{"pid": 42')
    report = registry.doctor()
    assert {f.subject for f in report.findings if f.check == "temp-file"} == {str(p) for p in leftovers}
    fixed = registry.doctor(fix=True)
    assert fixed.ok and not any(p.exists() for p in leftovers)


def test_tag_registered_elsewhere_under_the_same_name_is_reported_with_the_repair(
    registry: Any, make_bundle: Callable[..., Path], bare_remote: Path, tmp_path: Path, clock: Any
) -> None:
    from gitreg.registry import Registry

    registry.register(tiny(make_bundle), "policy", push=True)
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare_remote), str(other))
    theirs = registry.register(tiny(make_bundle, 1), "policy", push=True)
    ours = Registry(other, clock=clock).register(tiny(make_bundle, 2), "policy")  # not pushed
    assert ours.version == theirs.version  # the same name, different bytes
    res = run_cli("-C", str(other), "doctor", "--remote-check")
    assert res.returncode == 1
    assert f"{ours.version} here is tag" in res.stdout and "another machine registered" in res.stdout
    assert f"git tag -d {ours.version}" in res.stdout and "--push" in res.stdout
    # the repair it names works: the remote's tag here, and ours registered again, pushed
    git(other, "tag", "-d", ours.version)
    git(other, "fetch", "-q", "origin", "tag", ours.version)
    git(other, "fetch", "-q", "origin")
    git(other, "reset", "-q", "--keep", "origin/main")
    again = Registry(other, clock=clock).register(tiny(make_bundle, 2), "policy", push=True)
    assert again.version != theirs.version
    assert Registry(other).doctor(remote_check=True).ok
