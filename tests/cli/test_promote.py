"""End-to-end: `gitreg promote` / `gitreg deploy` on real repos with a bare remote.

A promotion is a branch `gitreg/<model>-<stage>-<version>` with one commit changing only
models.yaml (trailers included), pushed, and a pull request opened with the host's CLI (a fake
`gh`/`glab` on PATH that records its arguments: the only stand-in) or a printed compare URL.
`--direct` commits on the current branch. Refusals change nothing anywhere.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from gitreg.testing.cli import GITREG, run_cli
from gitreg.testing.lifecycle import (
    P1,
    P2,
    P3,
    P4,
    PR_URLS,
    R1,
    R2,
    Repo,
    commit_manifest,
    direct,
    make_repo,
    path_without_forge_tools,
    point_origin_at,
    trailers,
)

pytestmark = pytest.mark.slow  # real registries, real git, a bare remote


@pytest.fixture
def repo(tmp_path, tmp_path_factory, monkeypatch) -> Repo:
    return make_repo(tmp_path, tmp_path_factory, monkeypatch)


def promote(repo: Repo, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli("promote", *args, cwd=repo.path, env=env)


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    """(old, new) line pairs that differ, for texts with the same number of lines."""
    a, b = before.splitlines(), after.splitlines()
    assert len(a) == len(b), f"line count changed:\n{before}\n---\n{after}"
    return [(x, y) for x, y in zip(a, b, strict=True) if x != y]


# -- the pull-request path -------------------------------------------------------------------------
def test_promote_opens_a_pull_request_from_a_one_commit_branch(repo: Repo):
    direct(repo, P1, "production")
    repo.push_all()
    before = repo.snapshot()
    main = repo.head()

    proc = promote(repo, P2, "production")

    assert proc.returncode == 0, proc.stderr
    branch = f"gitreg/policy-production-{P2}"
    assert PR_URLS["gh"] in proc.stdout
    # the branch: one commit on top of main, changing only models.yaml, only the stage line
    assert repo.git("rev-list", f"main..{branch}").splitlines() == [repo.git("rev-parse", branch)]
    assert repo.git("rev-parse", f"{branch}~1") == main
    assert repo.git("diff", "--name-only", main, branch) == "models.yaml"
    assert changed_lines(repo.manifest_at(main), repo.manifest_at(branch)) == [
        (f"      production: {P1}", f"      production: {P2}")
    ]
    subject = repo.git("log", "-1", "--format=%s", branch)
    assert subject == f"promote policy {P2} to production"
    assert trailers(repo, branch) == {
        "Gitreg-Model": "policy",
        "Gitreg-Stage": "production",
        "Gitreg-Version": P2,
        "Gitreg-Previous": P1,
    }
    # pushed to the remote, main there untouched
    assert repo.remote_git("rev-parse", f"refs/heads/{branch}") == repo.git("rev-parse", branch)
    assert repo.remote_git("rev-parse", "refs/heads/main") == main
    # gh was asked for exactly this pull request
    (call,) = repo.forge_calls()
    assert call["tool"] == "gh"
    argv = call["argv"]
    assert argv[:2] == ["pr", "create"]
    assert argv[argv.index("--base") + 1] == "main"
    assert argv[argv.index("--head") + 1] == branch
    assert argv[argv.index("--title") + 1] == subject
    assert "Gitreg-Version: " + P2 in argv[argv.index("--body") + 1]
    # the user's side: same branch, same HEAD, same working tree, same models.yaml
    after = repo.snapshot()
    for key in ("head", "branch", "status", "manifest", "worktrees"):
        assert after[key] == before[key], key


def test_promote_json_reports_the_branch_and_the_pull_request(repo: Repo):
    proc = promote(repo, P1, "staging", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["mode"] == "pr"
    assert result["branch"] == f"gitreg/policy-staging-{P1}"
    assert result["base"] == "main"
    assert result["pushed"] is True
    assert result["pr_tool"] == "gh"
    assert result["pr_url"] == PR_URLS["gh"]
    assert result["previous"] is None
    assert trailers(repo, result["branch"])["Gitreg-Previous"] == "none"


def test_promote_from_another_branch_targets_that_branch(repo: Repo):
    repo.git("switch", "-q", "-c", "release")
    proc = promote(repo, P1, "staging")
    assert proc.returncode == 0, proc.stderr
    argv = repo.forge_calls()[0]["argv"]
    assert argv[argv.index("--base") + 1] == "release"
    assert repo.git("symbolic-ref", "--short", "HEAD") == "release"


def test_a_gitlab_remote_opens_a_merge_request_with_glab(repo: Repo):
    point_origin_at(repo, "git@gitlab.example.com:team/reg.git")
    proc = promote(repo, P1, "staging")
    assert proc.returncode == 0, proc.stderr
    branch = f"gitreg/policy-staging-{P1}"
    (call,) = repo.forge_calls()  # glab only: gh is on PATH too but not used
    assert call["tool"] == "glab"
    argv = call["argv"]
    assert argv[:2] == ["mr", "create"]
    assert argv[argv.index("--source-branch") + 1] == branch
    assert argv[argv.index("--target-branch") + 1] == "main"
    assert argv[argv.index("--title") + 1] == f"promote policy {P1} to staging"
    assert PR_URLS["glab"] in proc.stdout
    assert repo.remote_git("rev-parse", f"refs/heads/{branch}") == repo.git("rev-parse", branch)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "git@github.com:org/reg.git",
            f"https://github.com/org/reg/compare/main...gitreg/policy-staging-{P1}?expand=1",
        ),
        (
            "https://gitlab.example.com/team/sub/reg.git",
            "https://gitlab.example.com/team/sub/reg/-/merge_requests/new"
            f"?merge_request%5Bsource_branch%5D=gitreg/policy-staging-{P1}"
            "&merge_request%5Btarget_branch%5D=main",
        ),
    ],
)
def test_without_gh_or_glab_the_compare_url_is_printed(repo: Repo, monkeypatch, url: str, expected: str):
    point_origin_at(repo, url)
    monkeypatch.setenv("PATH", path_without_forge_tools(repo.bin_dir))
    proc = promote(repo, P1, "staging")
    assert proc.returncode == 0, proc.stderr
    assert expected in proc.stdout
    assert repo.forge_calls() == []
    assert repo.remote_git("rev-parse", f"refs/heads/gitreg/policy-staging-{P1}")


def test_without_a_remote_the_branch_stays_local_and_the_cli_says_so(repo: Repo):
    repo.git("remote", "remove", "origin")
    before = repo.head()
    proc = promote(repo, P1, "staging")
    assert proc.returncode == 0, proc.stderr
    assert "no Git remote" in proc.stdout
    assert repo.git("rev-parse", f"gitreg/policy-staging-{P1}~1") == before
    assert repo.forge_calls() == []


def test_gh_failing_is_one_line_and_names_the_pushed_branch(repo: Repo):
    proc = promote(repo, P1, "staging", env={"FAKE_FORGE_EXIT": "1"})
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "gh could not open the pull request" in proc.stderr
    assert f"gitreg/policy-staging-{P1}" in proc.stderr
    assert proc.stdout == ""


def test_a_second_identical_promotion_says_nothing_changed(repo: Repo):
    direct(repo, P1, "staging")
    before = repo.snapshot()
    proc = promote(repo, P1, "staging")
    assert proc.returncode == 0, proc.stderr
    assert "nothing changed" in proc.stdout
    assert repo.snapshot() == before
    assert repo.forge_calls() == []


def test_an_existing_branch_of_the_same_promotion_is_refused(repo: Repo):
    assert promote(repo, P1, "staging").returncode == 0
    before = repo.snapshot()
    proc = promote(repo, P1, "staging")
    assert proc.returncode == 1
    assert "exists already" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert repo.snapshot() == before


def test_a_rejected_push_leaves_no_branch_behind(repo: Repo):
    hook = repo.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected: pushes are closed' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = repo.snapshot()
    proc = promote(repo, P1, "staging")
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1
    assert repo.snapshot() == before
    assert repo.forge_calls() == []


# -- --direct --------------------------------------------------------------------------------------
def test_direct_commits_on_the_current_branch(repo: Repo):
    main = repo.head()
    remote_before = repo.remote_refs()
    proc = promote(repo, P1, "staging", "--direct")
    assert proc.returncode == 0, proc.stderr
    assert repo.git("rev-parse", "HEAD~1") == main
    assert repo.git("log", "-1", "--format=%s") == f"promote policy {P1} to staging"
    assert trailers(repo, "HEAD")["Gitreg-Stage"] == "staging"
    assert repo.git("diff", "--name-only", "HEAD~1", "HEAD") == "models.yaml"
    assert repo.git("status", "--porcelain") == ""
    assert f"staging: {P1}" in repo.manifest().decode()
    assert repo.git("for-each-ref", "refs/heads/gitreg/") == ""
    assert repo.remote_refs() == remote_before  # not pushed without --push
    assert repo.forge_calls() == []


def test_direct_push_pushes_the_branch(repo: Repo):
    proc = promote(repo, P1, "production", "--direct", "--push")
    assert proc.returncode == 0, proc.stderr
    assert "pushed main" in proc.stdout
    assert repo.remote_git("rev-parse", "refs/heads/main") == repo.head()


def test_deploy_is_promote_to_production(repo: Repo):
    proc = run_cli("deploy", P2, "--direct", cwd=repo.path)
    assert proc.returncode == 0, proc.stderr
    assert repo.git("log", "-1", "--format=%s") == f"promote policy {P2} to production"
    proc = run_cli("deploy", P3, "--canary", "10", "--direct", cwd=repo.path)
    assert proc.returncode == 0, proc.stderr
    text = repo.manifest().decode()
    assert f"production: {P2}" in text
    assert f"version: {P3}" in text and "traffic: 10" in text
    assert trailers(repo, "HEAD")["Gitreg-Stage"] == "canary"
    assert repo.git("log", "-1", "--format=%s") == f"promote policy {P3} to canary (10%)"


def test_deploy_opens_a_pull_request_by_default(repo: Repo):
    proc = run_cli("deploy", P1, cwd=repo.path)
    assert proc.returncode == 0, proc.stderr
    argv = repo.forge_calls()[0]["argv"]
    assert argv[argv.index("--head") + 1] == f"gitreg/policy-production-{P1}"


def test_promoting_the_canary_to_production_graduates_it(repo: Repo):
    direct(repo, P1, "production")
    direct(repo, P2, canary=25)
    proc = promote(repo, P2, "production", "--direct")
    assert proc.returncode == 0, proc.stderr
    text = repo.manifest().decode()
    assert f"production: {P2}" in text
    assert "canary" not in text.split("models:")[1]


def test_archive_moves_a_version_out_of_its_stages(repo: Repo):
    direct(repo, P1, "staging")
    proc = promote(repo, P1, "archived", "--direct")
    assert proc.returncode == 0, proc.stderr
    assert repo.git("log", "-1", "--format=%s") == f"archive policy {P1}"
    text = repo.manifest().decode()
    assert f"archived: [{P1}]" in text
    assert "staging:" not in text


# -- round trip ----------------------------------------------------------------------------------
COMMENTED = textwrap.dedent(
    f"""\
    # Our model registry. Every line here is reviewed.
    #   - production changes need two approvals
    version: 1   # the manifest format

    models:
      # the trading policy
      policy:
        path: models/policy      # bundle folder
        stages:
          # what serves traffic
          production: {P1}   # since July

          staging: {P2}      # trial
        archived: [{P4}]   # flow style
        retention: {{keep_last: 20, max_age_days: 90}}

      # ranking, owned by search
      ranker:
        stages: {{staging: {R1}}}
        path: models/ranker

    metrics:
      lower_is_better: [turnover, slippage]   # ours
    # trailing comment
    """
)


@pytest.mark.parametrize("mode", ["pr", "direct"])
def test_a_commented_manifest_survives_byte_for_byte_but_the_changed_line(repo: Repo, mode: str):
    base = commit_manifest(repo, COMMENTED)
    args = ["--direct"] if mode == "direct" else []
    proc = promote(repo, P3, "production", *args)
    assert proc.returncode == 0, proc.stderr
    rev = "HEAD" if mode == "direct" else f"gitreg/policy-production-{P3}"
    after = repo.manifest_at(rev)
    assert changed_lines(COMMENTED, after) == [
        (f"      production: {P1}   # since July", f"      production: {P3}   # since July")
    ]
    assert repo.git("rev-parse", f"{rev}~1") == base


def test_a_flow_style_mapping_changes_only_its_own_line(repo: Repo):
    commit_manifest(repo, COMMENTED)
    proc = promote(repo, R2, "staging", "--direct")
    assert proc.returncode == 0, proc.stderr
    assert changed_lines(COMMENTED, repo.manifest_at("HEAD")) == [
        (f"    stages: {{staging: {R1}}}", f"    stages: {{staging: {R2}}}")
    ]


def test_a_flow_style_canary_keeps_its_style(repo: Repo):
    text = COMMENTED.replace(
        f"    archived: [{P4}]   # flow style\n",
        f"    canary: {{version: {P2}, traffic: 5}}   # a little\n    archived: [{P4}]   # flow style\n",
    )
    commit_manifest(repo, text)
    proc = promote(repo, P3, "--canary", "20", "--direct")
    assert proc.returncode == 0, proc.stderr
    assert changed_lines(text, repo.manifest_at("HEAD")) == [
        (
            f"    canary: {{version: {P2}, traffic: 5}}   # a little",
            f"    canary: {{version: {P3}, traffic: 20}}  # a little",  # the comment keeps its column
        )
    ]


def test_a_block_canary_keeps_its_comments(repo: Repo):
    text = COMMENTED.replace(
        f"    archived: [{P4}]   # flow style\n",
        "    canary:                       # optional: a share of traffic for a candidate\n"
        f"      version: {P2}\n"
        "      traffic: 5                  # percent\n"
        f"    archived: [{P4}]   # flow style\n",
    )
    commit_manifest(repo, text)
    proc = promote(repo, P3, "--canary", "20", "--direct")
    assert proc.returncode == 0, proc.stderr
    assert changed_lines(text, repo.manifest_at("HEAD")) == [
        (f"      version: {P2}", f"      version: {P3}"),
        ("      traffic: 5                  # percent", "      traffic: 20                 # percent"),
    ]


# -- refusals ------------------------------------------------------------------------------------
def _refused(repo: Repo, args: list[str], expected: str) -> None:
    before = repo.snapshot()
    proc = run_cli(*args, cwd=repo.path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert proc.stdout == ""
    assert repo.snapshot() == before
    assert repo.forge_calls() == []


@pytest.mark.parametrize("extra", [[], ["--direct"], ["--direct", "--push"]])
def test_an_unknown_version_is_refused(repo: Repo, extra: list[str]):
    _refused(repo, ["promote", "v2030-01-01--00h00", "staging", *extra], "no version 'v2030-01-01--00h00'")


def test_an_archived_version_is_refused(repo: Repo):
    direct(repo, P1, "archived")
    repo.push_all()
    _refused(repo, ["promote", P1, "staging"], f"{P1} is archived")
    _refused(repo, ["promote", P1, "production", "--direct", "--force"], f"{P1} is archived")


@pytest.mark.parametrize(
    "args",
    [
        ["promote", P4, "production"],
        ["promote", P4, "production", "--direct"],
        ["promote", P4, "--canary", "10"],
        ["deploy", P4, "--direct"],
    ],
)
def test_production_and_canary_need_a_passing_validation_record(repo: Repo, args: list[str]):
    _refused(repo, args, f"{P4} has no passing validation record")


def test_force_promotes_an_unvalidated_version(repo: Repo):
    proc = promote(repo, P4, "production", "--direct", "--force")
    assert proc.returncode == 0, proc.stderr
    assert f"production: {P4}" in repo.manifest().decode()


def test_staging_needs_no_validation_record(repo: Repo):
    assert promote(repo, P4, "staging", "--direct").returncode == 0


@pytest.mark.parametrize("how", ["edited", "staged"])
def test_a_dirty_manifest_is_refused(repo: Repo, how: str):
    path = repo.path / "models.yaml"
    path.write_bytes(path.read_bytes() + b"# my local note\n")
    if how == "staged":
        repo.git("add", "models.yaml")
    _refused(repo, ["promote", P1, "staging"], "uncommitted changes in models.yaml")
    _refused(repo, ["promote", P1, "staging", "--direct"], "uncommitted changes in models.yaml")


def test_other_dirty_files_do_not_matter_and_stay_dirty(repo: Repo):
    (repo.path / "notes.txt").write_text("scratch\n")
    proc = promote(repo, P1, "staging", "--direct")
    assert proc.returncode == 0, proc.stderr
    assert repo.git("status", "--porcelain") == "?? notes.txt"
    assert repo.git("show", "--name-only", "--format=", "HEAD") == "models.yaml"


def test_a_detached_head_is_refused(repo: Repo):
    repo.git("switch", "-q", "--detach", "HEAD~1")
    _refused(repo, ["promote", P1, "staging"], "HEAD is detached")
    _refused(repo, ["promote", P1, "staging", "--direct"], "HEAD is detached")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["promote", P1], "which stage?"),
        (["promote", P1, "qa"], "unknown stage 'qa'"),
        (["promote", P1, "--canary", "150"], "is not a percentage"),
        (["promote", P1, "staging", "--canary", "10"], "--canary goes with production"),
        (["promote", "latest", "staging"], "not a version name"),
    ],
)
def test_bad_arguments_are_refused(repo: Repo, args: list[str], expected: str):
    _refused(repo, args, expected)


def test_archiving_the_production_version_is_refused(repo: Repo):
    direct(repo, P1, "production")
    repo.push_all()
    _refused(repo, ["promote", P1, "archived", "--direct"], f"{P1} is the production version of policy")


# -- concurrency ---------------------------------------------------------------------------------
def _together(repo: Repo, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    procs = [
        subprocess.Popen(
            [GITREG, *cmd], cwd=repo.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for cmd in commands
    ]
    results = []
    for p, cmd in zip(procs, commands, strict=True):
        out, err = p.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(cmd, p.returncode, out, err))
    return results


def test_concurrent_direct_promotions_of_different_models_both_land(repo: Repo):
    main = repo.head()
    results = _together(
        repo,
        ["promote", P1, "staging", "--direct"],
        ["promote", R1, "production", "--direct"],
    )
    for r in results:
        assert r.returncode == 0, r.stderr
    text = repo.manifest_at("HEAD")
    assert f"staging: {P1}" in text
    assert f"production: {R1}" in text
    assert repo.git("rev-list", "--count", f"{main}..HEAD") == "2"
    assert repo.git("status", "--porcelain") == ""
    assert repo.manifest().decode() == text


def _holds_open(pid: int, path: Path) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd) == str(path) for fd in fds.iterdir())
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to see who waits for the lock")
def test_direct_promotions_queued_on_the_lock_both_land(repo: Repo):
    """Both processes get past their start-up checks and wait for the repository lock (held
    here) before either writes: the second must build on the first's commit."""
    lock = repo.path / ".git" / "gitreg.lock"
    main = repo.head()
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        procs = [
            subprocess.Popen(
                [GITREG, *cmd], cwd=repo.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for cmd in (["promote", P1, "staging", "--direct"], ["promote", R1, "production", "--direct"])
        ]
        deadline = time.monotonic() + 120
        while not all(_holds_open(p.pid, lock) for p in procs):
            assert time.monotonic() < deadline, "the promotions never reached the lock"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.05)
    finally:
        os.close(fd)
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    text = repo.manifest_at("HEAD")
    assert f"staging: {P1}" in text
    assert f"production: {R1}" in text
    assert repo.git("rev-list", "--count", f"{main}..HEAD") == "2"
    assert repo.git("status", "--porcelain") == ""


def test_concurrent_pull_request_promotions_of_different_models_both_land(repo: Repo):
    main = repo.head()
    results = _together(repo, ["promote", P1, "production"], ["promote", R2, "staging"])
    for r in results:
        assert r.returncode == 0, r.stderr
    branches = [f"gitreg/policy-production-{P1}", f"gitreg/ranker-staging-{R2}"]
    for b in branches:
        assert repo.git("rev-parse", f"{b}~1") == main
        assert repo.remote_git("rev-parse", f"refs/heads/{b}") == repo.git("rev-parse", b)
    assert sorted(c["argv"][c["argv"].index("--head") + 1] for c in repo.forge_calls()) == branches
    assert repo.head() == main
    assert repo.git("status", "--porcelain") == ""
    # both pull requests merge: neither change is lost
    for b in branches:
        repo.git("merge", "-q", "--no-ff", "-m", f"Merge pull request from {b}", b)
    text = repo.manifest().decode()
    assert f"production: {P1}" in text
    assert f"staging: {R2}" in text
