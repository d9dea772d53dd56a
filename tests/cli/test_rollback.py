"""End-to-end: `gitreg rollback`, `gitreg history` and `gitreg status` on real repos.

Rollback is a real `git revert` of the commit that last moved the stage (a `Revert "…"`
commit); when that commit changed more than this stage, a commit restoring only this stage
with a revert-style message; `--to` sets an explicit version. History reads the stage
changes back from `git log -- models.yaml`, with the pull request that brought them.
"""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

from gitreg.testing.cli import run_cli
from gitreg.testing.lifecycle import (
    P1,
    P2,
    P3,
    P4,
    PR_URLS,
    R1,
    Repo,
    commit_manifest,
    direct,
    make_repo,
    trailers,
)

pytestmark = pytest.mark.slow  # real registries, real git, a bare remote


@pytest.fixture
def repo(tmp_path, tmp_path_factory, monkeypatch) -> Repo:
    return make_repo(tmp_path, tmp_path_factory, monkeypatch)


@pytest.fixture
def two_productions(repo: Repo) -> Repo:
    """production P1, then P2 (each its own --direct commit), pushed."""
    direct(repo, P1, "production")
    direct(repo, P2, "production")
    repo.push_all()
    return repo


def rollback(repo: Repo, *args: str) -> dict:
    proc = run_cli("rollback", *args, "--json", cwd=repo.path)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def stage_of(repo: Repo, rev: str, model: str = "policy") -> dict:
    import yaml

    return yaml.safe_load(repo.git("show", f"{rev}:models.yaml"))["models"][model]


def subject(repo: Repo, rev: str = "HEAD") -> str:
    return repo.git("log", "-1", "--format=%s", rev)


# -- git revert --------------------------------------------------------------------------------------
def test_rollback_direct_is_a_real_git_revert(two_productions: Repo):
    repo = two_productions
    moved = repo.head()  # the commit that put P2 in production
    before_move = repo.manifest_at(f"{moved}~1")

    result = rollback(repo, "policy", "--direct")

    assert result["kind"] == "revert"
    assert result["reverted"] == moved
    assert (result["version"], result["previous"]) == (P1, P2)
    assert subject(repo) == f'Revert "promote policy {P2} to production"'
    assert f"This reverts commit {moved}." in repo.git("log", "-1", "--format=%b")
    assert repo.git("rev-parse", "HEAD~1") == moved
    assert repo.manifest_at("HEAD") == before_move  # byte for byte what it was
    assert repo.manifest().decode() == before_move
    assert repo.git("status", "--porcelain") == ""
    assert not (repo.path / ".git" / "REVERT_HEAD").exists()
    assert repo.remote_git("rev-parse", "refs/heads/main") == moved  # not pushed


def test_rollback_direct_push(two_productions: Repo):
    repo = two_productions
    result = rollback(repo, "policy", "--direct", "--push")
    assert result["pushed"] is True
    assert repo.remote_git("rev-parse", "refs/heads/main") == repo.head()
    assert subject(repo) == f'Revert "promote policy {P2} to production"'


def test_rollback_opens_a_pull_request_with_the_revert(two_productions: Repo):
    repo = two_productions
    main = repo.head()
    before = repo.snapshot()

    result = rollback(repo, "policy")

    branch = f"gitreg/policy-rollback-production-{P1}"
    assert result["branch"] == branch and result["mode"] == "pr" and result["kind"] == "revert"
    assert repo.git("rev-list", f"main..{branch}").splitlines() == [repo.git("rev-parse", branch)]
    assert repo.git("rev-parse", f"{branch}~1") == main
    assert subject(repo, branch) == f'Revert "promote policy {P2} to production"'
    assert f"This reverts commit {main}." in repo.git("log", "-1", "--format=%b", branch)
    assert stage_of(repo, branch)["stages"]["production"] == P1
    assert repo.remote_git("rev-parse", f"refs/heads/{branch}") == repo.git("rev-parse", branch)
    (call,) = repo.forge_calls()
    argv = call["argv"]
    assert argv[argv.index("--head") + 1] == branch
    assert argv[argv.index("--base") + 1] == "main"
    assert argv[argv.index("--title") + 1] == f'Revert "promote policy {P2} to production"'
    assert result["pr_url"] == PR_URLS["gh"]
    after = repo.snapshot()
    for key in ("head", "branch", "status", "manifest", "worktrees"):
        assert after[key] == before[key], key


def test_rollback_of_the_first_production_clears_it(repo: Repo):
    direct(repo, P1, "production")
    result = rollback(repo, "policy", "--direct")
    assert result["kind"] == "revert" and result["version"] is None
    assert "production" not in (stage_of(repo, "HEAD").get("stages") or {})


def test_rollback_of_staging(repo: Repo):
    direct(repo, P1, "staging")
    direct(repo, P4, "staging")
    result = rollback(repo, "policy", "--stage", "staging", "--direct")
    assert result["kind"] == "revert"
    assert subject(repo) == f'Revert "promote policy {P4} to staging"'
    assert stage_of(repo, "HEAD")["stages"]["staging"] == P1


def test_rollback_of_a_change_that_came_by_merged_pull_request(repo: Repo):
    direct(repo, P1, "staging")
    assert run_cli("promote", P3, "staging", cwd=repo.path).returncode == 0
    branch = f"gitreg/policy-staging-{P3}"
    repo.git("merge", "-q", "--no-ff", "-m", f"Merge pull request #12 from org/{branch}", branch)
    result = rollback(repo, "policy", "--stage", "staging", "--direct")
    assert result["kind"] == "revert"
    assert result["reverted"] == repo.git("rev-parse", branch)  # the branch commit, not the merge
    assert subject(repo) == f'Revert "promote policy {P3} to staging"'
    assert stage_of(repo, "HEAD")["stages"]["staging"] == P1


# -- canary ----------------------------------------------------------------------------------------
def test_rollback_of_a_new_canary_removes_it(repo: Repo):
    direct(repo, P1, "production")
    direct(repo, P2, canary=10)
    result = rollback(repo, "policy", "--stage", "canary", "--direct")
    assert result["kind"] == "revert"
    assert subject(repo) == f'Revert "promote policy {P2} to canary (10%)"'
    entry = stage_of(repo, "HEAD")
    assert "canary" not in entry
    assert entry["stages"]["production"] == P1


def test_rollback_of_a_changed_canary_restores_version_and_traffic(repo: Repo):
    direct(repo, P1, "production")
    direct(repo, P2, canary=10)
    direct(repo, P3, canary=30)
    result = rollback(repo, "policy", "--stage", "canary", "--direct")
    assert (result["version"], result["previous"]) == (P2, P3)
    assert stage_of(repo, "HEAD")["canary"] == {"version": P2, "traffic": 10}
    assert subject(repo).startswith(f'Revert "promote policy {P3} to canary (30%)"')


def test_rollback_canary_to_an_explicit_version_keeps_the_traffic(repo: Repo):
    direct(repo, P1, "production")
    direct(repo, P3, canary=15)
    result = rollback(repo, "policy", "--stage", "canary", "--to", P2, "--direct")
    assert result["kind"] == "to"
    assert stage_of(repo, "HEAD")["canary"] == {"version": P2, "traffic": 15}


# -- restore (the commit changed more than this stage) ------------------------------------------------
HAND = textwrap.dedent(
    """\
    version: 1
    models:
      policy:
        path: models/policy
        stages:
          production: {prod}
          staging: {staging}
      ranker:
        path: models/ranker
    """
)


def hand(prod: str, staging: str) -> str:
    return HAND.replace("{prod}", prod).replace("{staging}", staging)


def test_a_commit_that_changed_two_stages_is_restored_for_one_stage_only(repo: Repo):
    commit_manifest(repo, hand(P1, P1), "set up")
    bump = commit_manifest(repo, hand(P2, P3), "bump everything")
    result = rollback(repo, "policy", "--direct")
    assert result["kind"] == "restore"
    assert result["reverted"] == bump
    assert subject(repo) == 'Revert "bump everything"'
    body = repo.git("log", "-1", "--format=%b")
    assert f"restores only the production stage of policy as it was before {bump[:12]}" in body
    assert trailers(repo, "HEAD") == {
        "Gitreg-Model": "policy",
        "Gitreg-Stage": "production",
        "Gitreg-Version": P1,
        "Gitreg-Previous": P2,
    }
    assert repo.manifest_at("HEAD") == hand(P1, P3)  # staging's change is kept
    assert repo.git("status", "--porcelain") == ""


def test_a_commit_that_also_changed_another_file_is_restored_not_reverted(repo: Repo):
    commit_manifest(repo, hand(P1, P1), "set up")
    (repo.path / "NOTES.md").write_text("moving to P2\n")
    (repo.path / "models.yaml").write_text(hand(P2, P1))
    repo.git("add", "NOTES.md", "models.yaml")
    repo.git("commit", "-q", "-m", "P2 to production, with notes")
    result = rollback(repo, "policy")  # pull-request path
    assert result["kind"] == "restore"
    branch = result["branch"]
    assert repo.git("diff", "--name-only", "main", branch) == "models.yaml"  # NOTES.md stays
    assert repo.manifest_at(branch) == hand(P1, P1)
    assert subject(repo, branch) == 'Revert "P2 to production, with notes"'
    assert repo.manifest() == hand(P2, P1).encode()  # the working tree is not touched


@pytest.mark.parametrize("mode", ["direct", "pr"])
def test_a_revert_that_conflicts_with_later_edits_restores_instead(repo: Repo, mode: str):
    direct(repo, P1, "production")
    direct(repo, P2, "production")
    moved = repo.head()
    # a later hand edit rewrites the lines around production: the revert cannot apply
    text = (
        repo.manifest().decode().replace(f"production: {P2}", f"staging: {P3}\n      production: {P2}  # hot")
    )
    commit_manifest(repo, text, "staging and a comment")
    before = repo.snapshot()
    result = rollback(repo, "policy", *(["--direct"] if mode == "direct" else []))
    assert result["kind"] == "restore"
    assert result["reverted"] == moved
    rev = "HEAD" if mode == "direct" else result["branch"]
    assert subject(repo, rev) == f'Revert "promote policy {P2} to production"'
    assert repo.manifest_at(rev) == text.replace(f"production: {P2}  # hot", f"production: {P1}  # hot")
    assert not (repo.path / ".git" / "REVERT_HEAD").exists()
    assert repo.git("status", "--porcelain") == ""
    assert repo.git("worktree", "list", "--porcelain").count("worktree ") == 1
    if mode == "pr":
        assert repo.head() == before["head"]
        assert repo.manifest() == before["manifest"]


# -- --to ------------------------------------------------------------------------------------------
def test_rollback_to_an_explicit_version(two_productions: Repo):
    repo = two_productions
    direct(repo, P3, "production")
    result = rollback(repo, "policy", "--to", P1, "--direct")
    assert result["kind"] == "to"
    assert subject(repo) == f"rollback policy production to {P1}"
    assert trailers(repo, "HEAD") == {
        "Gitreg-Model": "policy",
        "Gitreg-Stage": "production",
        "Gitreg-Version": P1,
        "Gitreg-Previous": P3,
    }
    assert stage_of(repo, "HEAD")["stages"]["production"] == P1


def test_rollback_to_through_a_pull_request(two_productions: Repo):
    repo = two_productions
    result = rollback(repo, "policy", "--to", P1)
    assert result["branch"] == f"gitreg/policy-rollback-production-{P1}"
    assert repo.remote_git("rev-parse", f"refs/heads/{result['branch']}")
    assert stage_of(repo, result["branch"])["stages"]["production"] == P1


# -- refusals --------------------------------------------------------------------------------------
def _refused(repo: Repo, args: list[str], expected: str) -> None:
    before = repo.snapshot()
    proc = run_cli(*args, cwd=repo.path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert repo.snapshot() == before
    assert repo.forge_calls() == []


def test_rollback_refusals_change_nothing(two_productions: Repo):
    repo = two_productions
    direct(repo, P3, "archived")
    repo.push_all()
    cases = [
        (["rollback", "ranker"], "no commit ever changed the production stage of ranker"),
        (["rollback", "ranker", "--direct"], "no commit ever changed the production stage of ranker"),
        (["rollback", "nosuch"], "no model 'nosuch'"),
        (["rollback", "policy", "--stage", "archived"], "cannot roll back stage 'archived'"),
        (["rollback", "policy", "--to", R1], f"{R1} is a version of ranker, not policy"),
        (["rollback", "policy", "--to", P2, "--direct"], f"policy production is already {P2}"),
        (["rollback", "policy", "--to", P3], f"{P3} is archived"),
        (["rollback", "policy", "--to", "v2030-01-01--00h00"], "no version 'v2030-01-01--00h00'"),
    ]
    for args, expected in cases:
        _refused(repo, args, expected)


def test_rollback_refuses_to_bring_back_an_archived_version(repo: Repo):
    direct(repo, P1, "staging")
    direct(repo, P1, "archived")  # leaves staging
    repo.push_all()
    _refused(repo, ["rollback", "policy", "--stage", "staging", "--direct"], f"{P1}, the staging version")
    # production P2 -> P3, then P2 archived: reverting P3 would put an archived version in production
    direct(repo, P2, "production")
    direct(repo, P3, "production")
    direct(repo, P2, "archived")
    repo.push_all()
    _refused(repo, ["rollback", "policy"], f"{P2}, the production version before")
    assert run_cli("check", cwd=repo.path).returncode == 0


def test_rollback_refuses_a_dirty_manifest_and_a_detached_head(two_productions: Repo):
    repo = two_productions
    path = repo.path / "models.yaml"
    path.write_bytes(path.read_bytes() + b"# wip\n")
    _refused(repo, ["rollback", "policy", "--direct"], "uncommitted changes in models.yaml")
    _refused(repo, ["rollback", "policy"], "uncommitted changes in models.yaml")
    repo.git("checkout", "-q", "models.yaml")
    repo.git("switch", "-q", "--detach")
    _refused(repo, ["rollback", "policy", "--direct"], "HEAD is detached")


def test_an_existing_rollback_branch_is_refused(two_productions: Repo):
    repo = two_productions
    rollback(repo, "policy")
    before = repo.snapshot()
    proc = run_cli("rollback", "policy", cwd=repo.path)
    assert proc.returncode == 1
    assert "exists already" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert repo.snapshot() == before


# -- history ---------------------------------------------------------------------------------------
def history(repo: Repo, *args: str) -> list[dict]:
    proc = run_cli("history", *args, "--json", cwd=repo.path)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_history_lists_every_change_with_from_to_and_the_pull_request(two_productions: Repo):
    repo = two_productions
    assert run_cli("promote", P3, "staging", cwd=repo.path).returncode == 0
    branch = f"gitreg/policy-staging-{P3}"
    repo.git("merge", "-q", "--no-ff", "-m", f"Merge pull request #12 from org/{branch}", branch)
    merge = repo.head()
    rollback(repo, "policy", "--direct")
    revert = repo.head()

    changes = history(repo, "policy")

    summary = [(c["stage"], c["previous"], c["version"], c["pull_request"]) for c in changes]
    assert summary == [
        ("production", P2, P1, None),
        ("staging", None, P3, 12),
        ("production", P1, P2, None),
        ("production", None, P1, None),
    ]
    assert changes[0]["commit"] == revert
    assert changes[0]["subject"] == f'Revert "promote policy {P2} to production"'
    assert changes[1]["commit"] == repo.git("rev-parse", branch)
    assert changes[1]["merge"] == merge
    assert all(c["model"] == "policy" and c["author"].startswith("Test User") for c in changes)

    table = run_cli("history", "policy", cwd=repo.path)
    assert table.returncode == 0, table.stderr
    assert "#12" in table.stdout
    assert P3 in table.stdout


def test_history_reads_a_gitlab_merge_request_number(repo: Repo):
    assert run_cli("promote", P2, "staging", cwd=repo.path).returncode == 0
    branch = f"gitreg/policy-staging-{P2}"
    repo.git(
        "merge",
        "-q",
        "--no-ff",
        "-m",
        f"Merge branch '{branch}' into 'main'",
        "-m",
        "See merge request team/reg!21",
        branch,
    )
    (change,) = history(repo, "policy")
    assert change["pull_request"] == 21
    assert change["merge"] == repo.head()


def test_history_of_all_models_and_canary_traffic(repo: Repo):
    direct(repo, P1, "production")
    direct(repo, P2, canary=10)
    direct(repo, R1, "staging")
    changes = history(repo)
    assert [(c["model"], c["stage"], c["version"], c["traffic"]) for c in changes] == [
        ("ranker", "staging", R1, None),
        ("policy", "canary", P2, 10),
        ("policy", "production", P1, None),
    ]


def test_history_reads_a_squash_merge_pr_number(repo: Repo):
    text = (
        repo.manifest()
        .decode()
        .replace("    path: models/policy\n", f"    path: models/policy\n    stages:\n      staging: {P2}\n")
    )
    commit_manifest(repo, text, "promote policy to staging (#34)")
    (change,) = history(repo, "policy")
    assert change["pull_request"] == 34


def test_history_of_an_unknown_model_and_of_nothing(repo: Repo):
    proc = run_cli("history", "nosuch", cwd=repo.path)
    assert proc.returncode == 1 and "no model 'nosuch'" in proc.stderr
    assert history(repo, "policy") == []
    proc = run_cli("history", cwd=repo.path)
    assert proc.returncode == 0 and "No stage changes yet" in proc.stdout


# -- status ----------------------------------------------------------------------------------------
def test_status_shows_each_stage_with_its_validation_and_the_last_change(repo: Repo):
    direct(repo, P1, "production")
    direct(repo, P4, "staging")
    direct(repo, P2, canary=20)
    proc = run_cli("status", "--json", cwd=repo.path)
    assert proc.returncode == 0, proc.stderr
    models = {m["model"]: m for m in json.loads(proc.stdout)}
    policy = models["policy"]
    stages = {s["stage"]: s for s in policy["stages"]}
    assert stages["production"]["version"] == P1 and stages["production"]["status"] == "validated"
    assert stages["staging"]["version"] == P4 and stages["staging"]["status"] == "registered"
    assert stages["canary"]["version"] == P2 and stages["canary"]["traffic"] == 20
    assert policy["versions"] == 4 and policy["latest"] == P4
    assert policy["last_change"]["stage"] == "canary"
    assert models["ranker"]["stages"] == [] and models["ranker"]["versions"] == 2

    table = run_cli("status", cwd=repo.path)
    assert table.returncode == 0, table.stderr
    assert "production" in table.stdout and P1 in table.stdout and "validated" in table.stdout


def test_rollback_direct_push_refused_changes_nothing(two_productions: Repo, tmp_path):
    repo = two_productions
    other = tmp_path / "other-clone"
    subprocess.run(["git", "clone", "-q", str(repo.remote), str(other)], check=True)
    (other / "NOTES.md").write_text("someone else got there first\n")
    subprocess.run(["git", "-C", str(other), "add", "NOTES.md"], check=True)
    subprocess.run(["git", "-C", str(other), "commit", "-q", "-m", "unrelated"], check=True)
    subprocess.run(["git", "-C", str(other), "push", "-q", "origin", "HEAD:refs/heads/main"], check=True)
    remote_main = repo.remote_git("rev-parse", "refs/heads/main")
    before = repo.snapshot()

    proc = run_cli("rollback", "policy", "--direct", "--push", cwd=repo.path)

    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "refused, nothing changed" in proc.stderr
    assert repo.snapshot() == before  # HEAD, branches, working tree, models.yaml as they were
    assert repo.remote_git("rev-parse", "refs/heads/main") == remote_main
