"""End-to-end: `gitreg check`, what CI runs on every pull request touching models.yaml.

Every rule with its exact line: schema, referenced versions are tags of that model,
production/canary validated, canary traffic 0-100, archived versions hold no stage, at most
one change per stage per model against --base (a canary graduating counts as one), and the
policy block. GitHub annotations when GITHUB_ACTIONS=true; exit 1 on any problem.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from gitreg.testing.cli import run_cli
from gitreg.testing.lifecycle import P1, P2, P3, P4, R1, R2, Repo, commit_manifest, direct, make_repo

pytestmark = pytest.mark.slow  # real registries, real git

UNKNOWN = "v2030-01-01--00h00"

GOOD = f"""\
# stages of our models
version: 1
models:
  policy:
    path: models/policy
    stages:
      production: {P1}
      staging: {P2}
    canary:
      version: {P3}
      traffic: 10
    archived: [{P4}]
  ranker:
    path: models/ranker
    stages:
      staging: {R1}
"""
# line numbers in GOOD
L_POLICY, L_PROD, L_STAGING, L_CANARY, L_CANARY_VERSION, L_TRAFFIC, L_ARCHIVED = 4, 7, 8, 9, 10, 11, 12
L_RANKER_STAGING = 16
UNARCHIVED = GOOD.replace(f"archived: [{P4}]", "archived: []")  # P4: registered, never validated


@pytest.fixture
def repo(tmp_path, tmp_path_factory, monkeypatch) -> Repo:
    return make_repo(tmp_path, tmp_path_factory, monkeypatch)


def check(repo: Repo, *args: str, env: dict[str, str] | None = None):
    return run_cli("check", *args, cwd=repo.path, env=env)


def write(repo: Repo, text: str) -> None:
    (repo.path / "models.yaml").write_text(text)


def problems(repo: Repo, *args: str) -> list[tuple[int | None, str]]:
    proc = check(repo, *args, "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == (0 if report["ok"] else 1)
    return [(p["line"], p["message"]) for p in report["problems"]]


def test_a_good_manifest_passes(repo: Repo):
    write(repo, GOOD)
    proc = check(repo)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "models.yaml: ok (2 models)"
    assert proc.stderr == ""


def test_the_fresh_manifest_of_init_passes(repo: Repo):
    proc = check(repo)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("start", "old", "new", "line", "message"),
    [
        (
            UNARCHIVED,
            f"production: {P1}",
            f"production: {P4}",
            L_PROD,
            f"policy production: {P4} has no passing validation record (registered)",
        ),
        (
            UNARCHIVED,
            f"version: {P3}",
            f"version: {P4}",
            L_CANARY_VERSION,
            f"policy canary: {P4} has no passing validation record (registered)",
        ),
        (GOOD, f"staging: {P2}", f"staging: {UNKNOWN}", L_STAGING, f"{UNKNOWN} is not a version tag"),
        (GOOD, f"staging: {P2}", f"staging: {R2}", L_STAGING, f"policy staging: {R2} is a version of ranker"),
        (
            GOOD,
            f"archived: [{P4}]",
            f"archived: [{UNKNOWN}]",
            L_ARCHIVED,
            f"archived: {UNKNOWN} is not a version",
        ),
        (GOOD, f"staging: {P2}", f"staging: {P4}", L_STAGING, f"policy staging: {P4} is archived; archived"),
        (GOOD, f"archived: [{P4}]", f"archived: [{P4}, {P3}]", L_CANARY, f"policy canary: {P3} is archived"),
    ],
    ids=[
        "unvalidated-production",
        "unvalidated-canary",
        "no-tag",
        "other-model",
        "archived-no-tag",
        "archived-in-stage",
        "archived-canary",
    ],
)
def test_each_reference_rule_reports_its_line(
    repo: Repo, start: str, old: str, new: str, line: int, message: str
):
    assert old in start
    write(repo, start.replace(old, new))
    found = problems(repo)
    assert len(found) == 1, found
    assert found[0][0] == line
    assert message in found[0][1]


def test_production_needs_validation_but_staging_does_not(repo: Repo):
    write(repo, UNARCHIVED.replace(f"staging: {P2}", f"staging: {P4}"))
    assert problems(repo) == []


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("traffic: 10", "traffic: 150", L_TRAFFIC, "models.policy.canary.traffic: "),
        ("traffic: 10", "traffic: -1", L_TRAFFIC, "models.policy.canary.traffic: "),
        (
            "    path: models/policy\n",
            "    path: models/policy\n    owner: me\n",
            6,
            "models.policy.owner: unknown key",
        ),
        (f"production: {P1}", "production: latest", L_PROD, "'latest' is not a version name"),
        ("    archived:", "   archived:", L_ARCHIVED, "invalid YAML"),
    ],
)
def test_schema_errors_report_their_line(repo: Repo, old: str, new: str, line: int, message: str):
    write(repo, GOOD.replace(old, new))
    proc = check(repo)
    assert proc.returncode == 1
    first = proc.stderr.splitlines()[0]
    assert first.startswith(f"models.yaml:{line}: error: "), proc.stderr
    assert message in first
    assert proc.stderr.splitlines()[-1] == "1 problem(s) in models.yaml"


def test_every_problem_is_reported_not_only_the_first(repo: Repo):
    text = UNARCHIVED.replace(f"production: {P1}", f"production: {P4}").replace(
        f"staging: {R1}", f"staging: {UNKNOWN}"
    )
    write(repo, text)
    proc = check(repo)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert [ln.split(": error:")[0] for ln in lines[:-1]] == [
        f"models.yaml:{L_PROD}",
        f"models.yaml:{L_RANKER_STAGING}",
    ]
    assert lines[-1] == "2 problem(s) in models.yaml"


def test_github_actions_gets_annotations(repo: Repo):
    write(repo, UNARCHIVED.replace(f"production: {P1}", f"production: {P4}"))
    proc = check(repo, env={"GITHUB_ACTIONS": "true"})
    assert proc.returncode == 1
    (annotation,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("::")]
    assert re.fullmatch(
        rf"::error file=models\.yaml,line={L_PROD}::policy production: {P4} has no passing validation .*",
        annotation,
    )
    assert f"models.yaml:{L_PROD}: error:" in proc.stderr  # the log keeps the plain line too


def test_github_annotation_of_a_yaml_error(repo: Repo):
    write(repo, GOOD.replace("traffic: 10", "traffic: [10"))
    proc = check(repo, env={"GITHUB_ACTIONS": "true"})
    assert proc.returncode == 1
    assert re.search(r"^::error file=models\.yaml,line=\d+::", proc.stdout, re.M)


def test_no_annotations_outside_github_actions(repo: Repo):
    write(repo, UNARCHIVED.replace(f"production: {P1}", f"production: {P4}"))
    proc = check(repo)
    assert proc.returncode == 1 and "::error" not in proc.stdout


# -- against the pull request's base ------------------------------------------------------------------
def test_base_two_stages_of_one_model_in_one_pull_request(repo: Repo):
    commit_manifest(repo, GOOD)
    repo.push_all()
    repo.git("fetch", "-q", "origin")
    write(
        repo,
        GOOD.replace(f"production: {P1}", f"production: {P2}").replace(f"staging: {P2}", f"staging: {P3}"),
    )
    found = problems(repo, "--base", "origin/main")
    assert found == [
        (
            L_POLICY,
            "policy: 2 stages change in one pull request (production, staging); "
            "change one stage per pull request",
        )
    ]
    # the same edit without --base is fine
    assert problems(repo) == []


def test_base_one_stage_per_model_is_fine(repo: Repo):
    commit_manifest(repo, GOOD)
    write(
        repo,
        GOOD.replace(f"production: {P1}", f"production: {P2}").replace(f"staging: {R1}", f"staging: {R2}"),
    )
    proc = check(repo, "--base", "main")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "models.yaml: ok (2 models, compared with main)"


def test_base_canary_graduation_counts_as_one_change(repo: Repo):
    commit_manifest(repo, GOOD)
    graduated = GOOD.replace(f"production: {P1}", f"production: {P3}").replace(
        f"    canary:\n      version: {P3}\n      traffic: 10\n", ""
    )
    write(repo, graduated)
    assert problems(repo, "--base", "HEAD") == []
    # the canary moving and production moving to something else are two changes
    write(repo, GOOD.replace(f"production: {P1}", f"production: {P2}").replace("traffic: 10", "traffic: 50"))
    assert [line for line, _ in problems(repo, "--base", "HEAD")] == [L_POLICY]


def test_base_that_does_not_exist_is_one_line(repo: Repo):
    proc = check(repo, "--base", "origin/nosuch")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "error: --base origin/nosuch: no such revision — fetch it first: git fetch origin"
    )


def test_base_after_a_promote_branch_passes(repo: Repo):
    direct(repo, P1, "production")
    repo.push_all()
    assert run_cli("promote", P2, "production", cwd=repo.path).returncode == 0
    repo.git("switch", "-q", f"gitreg/policy-production-{P2}")
    repo.git("fetch", "-q", "origin")
    proc = check(repo, "--base", "origin/main")
    assert proc.returncode == 0, proc.stderr


# -- policy ----------------------------------------------------------------------------------------
STAGED_POLICY = "policy: {require_staging_before_production: true}\n"


def test_policy_require_staging_before_production(repo: Repo):
    commit_manifest(repo, GOOD + STAGED_POLICY)
    # P3 was never in staging (it is the canary): refused
    write(repo, (GOOD + STAGED_POLICY).replace(f"production: {P1}", f"production: {P3}"))
    assert problems(repo, "--base", "HEAD") == [
        (L_PROD, f"policy production: {P3} was never in staging (policy require_staging_before_production)")
    ]
    # P2 is in staging on the base: fine
    write(repo, (GOOD + STAGED_POLICY).replace(f"production: {P1}", f"production: {P2}"))
    assert problems(repo, "--base", "HEAD") == []


def test_policy_counts_a_past_staging_from_history(repo: Repo):
    direct(repo, P3, "staging")
    direct(repo, P2, "staging")  # P3 left staging, but it was there
    text = repo.manifest().decode() + STAGED_POLICY
    commit_manifest(repo, text)
    write(repo, text.replace("    stages:\n", f"    stages:\n      production: {P3}\n"))
    assert problems(repo, "--base", "HEAD") == []


def test_policy_unknown_key_is_reported_on_its_line(repo: Repo):
    write(repo, GOOD + "policy:\n  require_staging_before_prod: true\n")
    found = problems(repo)
    assert len(found) == 1
    assert found[0][0] == GOOD.count("\n") + 2
    assert "policy: unknown key 'require_staging_before_prod'" in found[0][1]


@pytest.mark.parametrize(
    "text",
    ["", "# nothing yet\n", "version: 1\n", "version: 1\nmodels:\n"],
    ids=["empty", "comment-only", "no-models-key", "models-null"],
)
def test_an_empty_or_model_less_manifest_fails_and_says_what_to_write(repo: Repo, text: str):
    write(repo, text)
    proc = check(repo)
    assert proc.returncode == 1, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ": error: " in ln]
    assert len(errors) == 1, proc.stderr  # one problem, on one line
    assert errors[0].startswith("models.yaml: error: has no `models:` mapping")
    assert "write `version: 1` and `models: {}`" in errors[0]  # what to write


@pytest.mark.parametrize(
    ("traffic", "said"),
    [("true", "not true"), ('"50"', "not the string '50'"), ("101", "from 0 to 100"), ("null", "not null")],
    ids=["bool", "string", "over-100", "null"],
)
def test_a_coerced_canary_traffic_fails_check_with_its_line(repo: Repo, traffic: str, said: str):
    write(repo, GOOD.replace("traffic: 10", f"traffic: {traffic}"))
    found = problems(repo)
    assert len(found) == 1, found
    assert found[0][0] == L_TRAFFIC
    assert "canary.traffic: must be a number from 0 to 100" in found[0][1] and said in found[0][1]


def test_a_nesting_bomb_is_refused_in_well_under_a_second(repo: Repo):
    """20,000 levels of `[` (40 KB) cost the YAML scanner 91 s: the pre-scan refuses it first."""
    write(repo, "version: 1\nmodels: " + "[" * 20_000 + "]" * 20_000 + "\n")
    from gitreg.registry import Registry

    reg = Registry(repo.path)
    started = time.perf_counter()
    report = reg.check()
    elapsed = time.perf_counter() - started
    assert not report.ok
    assert "nests deeper than 64 levels" in report.problems[0].message
    assert report.problems[0].line == 2
    assert elapsed < 1.0, elapsed
    proc = check(repo)  # and through the CLI: one line, exit 1
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ": error: " in ln]
    assert len(errors) == 1 and "nests deeper than 64 levels" in errors[0], proc.stderr


def test_a_non_utf8_manifest_fails_check(repo: Repo):
    (repo.path / "models.yaml").write_bytes(GOOD.encode() + b"# caf\xe9\n")
    found = problems(repo)
    assert len(found) == 1 and "is not UTF-8" in found[0][1], found
