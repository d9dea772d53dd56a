"""The CI templates `gitreg init` writes, tested for real.

Both files are parsed and checked against the CI systems' own schemas (check-jsonschema's
vendored GitHub-workflow and GitLab-CI schemas) and every shell step through shellcheck, as
actionlint would; their triggers are checked against version names; then the commands of each
job are run in a fresh clone of a registry's bare remote with the environment variables the CI
system would set (GitHub's `${{ … }}` expressions are expanded here; shell variables by bash,
as the runner does) — the `pip install` lines too, in a fresh venv, with the requirement the
template wrote (a wheel of this gitreg stands in for the package index, the machine's torch
wheel for torch's CPU index, which this machine cannot reach).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from gitreg import templates
from gitreg.testing.cli import run_cli
from gitreg.testing.lifecycle import P1, P2, P4, Repo, direct, make_repo
from gitreg.testing.repos import git
from gitreg.version import DIST_NAME, __version__, install_spec

VERSIONS_OK = ["v2025-07-06--18h51", "v2025-07-06--18h51-2", "v1999-12-31--23h59-10"]
NOT_VERSIONS = ["v1.0", "release-2025", "2025-07-06--18h51", "v2025-07-06"]


def load(name: str) -> dict[str, Any]:
    return YAML(typ="safe").load(templates.read(name))


@pytest.fixture(scope="module")
def github() -> dict[str, Any]:
    return load("github-workflow.yml")


@pytest.fixture(scope="module")
def gitlab() -> dict[str, Any]:
    return load("gitlab-ci.yml")


# -- parsing and triggers ----------------------------------------------------------------------------
def test_both_templates_parse_with_pyyaml_too():
    import yaml

    for name in ("github-workflow.yml", "gitlab-ci.yml"):
        assert isinstance(yaml.safe_load(templates.read(name)), dict)


def test_github_triggers_on_version_tags_and_on_pull_requests_touching_models_yaml(github):
    on = github["on"]
    (pattern,) = on["push"]["tags"]
    for v in VERSIONS_OK:
        assert fnmatch.fnmatchcase(v, pattern), v
    for v in NOT_VERSIONS:
        assert not fnmatch.fnmatchcase(v, pattern), v
    assert "branches" not in on["push"]  # branch pushes do not validate anything
    assert on["pull_request"]["paths"] == ["models.yaml"]


def test_github_jobs_split_by_event_with_least_privilege(github):
    assert github["permissions"] == {"contents": "read"}
    validate, check = github["jobs"]["validate"], github["jobs"]["check"]
    assert validate["if"] == "github.event_name == 'push'"
    assert validate["permissions"] == {"contents": "write"}
    assert check["if"] == "github.event_name == 'pull_request'"
    assert "permissions" not in check
    assert check["name"] == "gitreg check"  # the status check's name in branch protection
    checkout = check["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"]["fetch-depth"] == 0 and checkout["with"]["fetch-tags"] is True


def test_gitlab_rules_match_version_tags_and_merge_requests_touching_models_yaml(gitlab):
    (tag_rule,) = gitlab["gitreg-validate"]["rules"]
    m = re.fullmatch(r"\$CI_COMMIT_TAG =~ /(.+)/", tag_rule["if"])
    assert m, tag_rule
    regex = re.compile(m.group(1))
    assert all(regex.search(v) for v in VERSIONS_OK)
    assert not any(regex.search(v) for v in NOT_VERSIONS)
    (mr_rule,) = gitlab["gitreg-check"]["rules"]
    assert mr_rule["if"] == '$CI_PIPELINE_SOURCE == "merge_request_event"'
    assert mr_rule["changes"] == ["models.yaml"]
    assert gitlab["variables"]["GIT_DEPTH"] == "0"


def test_install_steps_pin_the_gitreg_that_wrote_them(github, gitlab):
    spec = install_spec()
    assert spec == f"{DIST_NAME}=={__version__}"  # an editable install: the release of that version
    assert github["env"]["GITREG_PIP_SPEC"] == f"${{{{ vars.GITREG_PIP_SPEC || '{spec}' }}}}"
    assert gitlab["variables"]["GITREG_PIP_SPEC"] == spec
    assert github["env"]["TORCH_VERSION"] == gitlab["variables"]["TORCH_VERSION"] == templates.torch_release()
    cpu = "--index-url https://download.pytorch.org/whl/cpu"
    for validate, check in (
        ([ln for _, ln in github_lines(github, "validate")], [ln for _, ln in github_lines(github, "check")]),
        (gitlab["gitreg-validate"]["script"], gitlab["gitreg-check"]["script"]),
    ):
        pips = [ln for ln in validate if ln.startswith("pip ")]
        assert pips == [f'pip install "torch==$TORCH_VERSION" {cpu}', 'pip install "$GITREG_PIP_SPEC"']
        assert [ln for ln in check if ln.startswith("pip ")] == ['pip install "$GITREG_PIP_SPEC"']
        assert not any("torch" in ln for ln in check)  # gitreg check never imports it
        for lines in (validate, check):
            after = lines[lines.index('pip install "$GITREG_PIP_SPEC"') + 1]
            assert after.startswith("command -v gitreg >/dev/null ||"), after


def test_the_spec_names_a_git_url_at_its_commit_when_installed_from_one(tmp_path, monkeypatch):
    import sys

    sha = "0123456789abcdef0123456789abcdef01234567"
    info = tmp_path / f"{DIST_NAME.replace('-', '_')}-0.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DIST_NAME}\nVersion: 0.3.0\n")
    direct = {
        "url": "https://tok:secret@github.com/acme/gitreg.git",
        "vcs_info": {"vcs": "git", "commit_id": sha},
    }
    (info / "direct_url.json").write_text(json.dumps(direct))
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    assert install_spec() == f"{DIST_NAME} @ git+https://github.com/acme/gitreg.git@{sha}"  # no credential
    (info / "direct_url.json").write_text(json.dumps({"url": "file:///src/gitreg", "dir_info": {}}))
    assert install_spec() == f"{DIST_NAME}==0.3.0"  # a local folder: no address CI could use
    text = templates.read("github-workflow.yml", pip_spec="it's @ odd")
    assert "GITREG_PIP_SPEC || 'it''s @ odd' }}" in text  # a GitHub expression literal, quoted


def test_templates_pass_the_ci_schemas_and_shellcheck(tmp_path):
    from check_jsonschema import main as check_jsonschema  # noqa: F401 (the tool is there)

    for name, schema in (
        ("github-workflow.yml", "vendor.github-workflows"),
        ("gitlab-ci.yml", "vendor.gitlab-ci"),
    ):
        path = tmp_path / name
        path.write_text(templates.read(name))
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema", schema, str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    scripts = [
        "\n".join(ln for _, ln in github_lines(load("github-workflow.yml"), j)) for j in ("validate", "check")
    ]
    gitlab = load("gitlab-ci.yml")
    scripts += ["\n".join(gitlab[j]["script"]) for j in ("gitreg-validate", "gitreg-check")]
    for i, script in enumerate(scripts):
        # as actionlint does: an expression becomes a placeholder word before shellcheck reads it
        path = tmp_path / f"step-{i}.sh"
        path.write_text("#!/bin/bash\n" + re.sub(r"\$\{\{.+?\}\}", "EXPR", script) + "\n")
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "shellcheck"), "-s", "bash", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, f"{script}\n{proc.stdout}"


def test_codeowners_guards_models_yaml():
    lines = [ln for ln in templates.read("CODEOWNERS").splitlines() if ln and not ln.startswith("#")]
    assert any(ln.split()[0] == "/models.yaml" and ln.split()[1].startswith("@") for ln in lines)


# -- running the jobs ------------------------------------------------------------------------------
def github_lines(workflow: dict[str, Any], job: str) -> list[tuple[dict[str, str], str]]:
    """(step env, command line) for every line of every `run:` of a job, in order."""
    out = []
    for step in workflow["jobs"][job]["steps"]:
        if "run" not in step:
            continue
        for line in step["run"].splitlines():
            if line.strip():
                out.append((step.get("env", {}), line.strip()))
    return out


def expand_github(text: str, context: dict[str, str]) -> str:
    """`${{ github.x }}`, `${{ secrets.X }}`, `${{ vars.X || 'default' }}` as Actions expands them
    (a missing secret or variable is the empty string)."""

    def one(m: re.Match[str]) -> str:
        expr = m.group(1).strip()
        options = [o.strip() for o in expr.split("||")]
        for option in options:
            if option.startswith("'") and option.endswith("'"):
                return option[1:-1]
            value = context.get(option, "")
            if value:
                return value
        return ""

    return re.sub(r"\$\{\{(.+?)\}\}", one, text)


def run_lines(
    lines: list[tuple[dict[str, str], str]], cwd: Path, env: dict[str, str]
) -> list[tuple[str, subprocess.CompletedProcess[str]]]:
    """Run each command line with bash as the runner does (``pip`` is the runner venv's)."""
    done = []
    for step_env, line in lines:
        command = line
        if TORCH_INDEX in line and LOCAL_TORCH:
            command = line.replace(f" --index-url {TORCH_INDEX}", "")  # the machine's torch wheel
        proc = subprocess.run(
            ["bash", "-e", "-c", command],
            cwd=cwd,
            env={**env, **step_env},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        done.append((line, proc))
        if proc.returncode != 0:
            break
    return done


TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
LOCAL_TORCH = bool(list(Path("/opt/wheels").glob("torch-*.whl")))  # pip's find-links names it
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> Path:
    """The runner's Python: a fresh venv with nothing installed, the package index holding a
    wheel of this gitreg (pip finds it through PIP_FIND_LINKS), the lock as pip's constraints."""
    base = tmp_path_factory.mktemp("runner")
    wheels = base / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    return venv


def base_env(tmp_path: Path, runner: Path) -> dict[str, str]:
    env = dict(os.environ)
    # pip and, once installed, gitreg: the runner's alone (no other gitreg on PATH)
    rest = [d for d in env["PATH"].split(os.pathsep) if d and not (Path(d) / "gitreg").exists()]
    env["PATH"] = os.pathsep.join([str(runner / "bin"), *rest])
    wheels = runner.parent / "wheels"
    env["PIP_FIND_LINKS"] = " ".join(str(p) for p in (wheels, Path("/opt/wheels")) if p.is_dir())
    env["PIP_CONSTRAINT"] = str(ROOT / "requirements" / "lock.txt")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.pop("VIRTUAL_ENV", None)
    for key in [k for k in env if k.startswith(("GITHUB_", "CI_", "GITLAB_"))]:
        del env[key]
    env["CI"] = "true"
    env["RUNNER_TEMP"] = str(tmp_path)
    return env


def github_job(
    workflow: dict[str, Any], job: str, context: dict[str, str], cwd: Path, env: dict[str, str]
) -> list[tuple[str, subprocess.CompletedProcess[str]]]:
    job_env = {k: expand_github(str(v), context) for k, v in workflow.get("env", {}).items()}
    lines = [
        ({k: expand_github(str(v), context) for k, v in step_env.items()}, expand_github(line, context))
        for step_env, line in github_lines(workflow, job)
    ]
    return run_lines(lines, cwd, {**env, **job_env})


def gitlab_job(
    ci: dict[str, Any], job: str, cwd: Path, env: dict[str, str]
) -> list[tuple[str, subprocess.CompletedProcess[str]]]:
    variables = {k: str(v) for k, v in ci.get("variables", {}).items()}
    return run_lines([({}, line) for line in ci[job]["script"]], cwd, {**variables, **env})


def assert_all_ok(
    done: list[tuple[str, subprocess.CompletedProcess[str]]], expected_gitreg: list[str]
) -> None:
    for line, proc in done:
        assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"
    assert [line for line, _ in done if line.startswith("gitreg ")] == expected_gitreg


def notes_on(repo: Path, tag: str) -> dict[str, Any] | None:
    obj = git(repo, "rev-parse", f"refs/tags/{tag}")
    proc = subprocess.run(
        ["git", "notes", "--ref=refs/notes/gitreg", "show", obj],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    return json.loads(proc.stdout) if proc.returncode == 0 else None


@pytest.fixture
def repo(tmp_path, tmp_path_factory, monkeypatch) -> Repo:
    return make_repo(tmp_path, tmp_path_factory, monkeypatch)


def tag_checkout(repo: Repo, dest: Path, tag: str, full: bool) -> Path:
    """What the runner checks out on a tag push: a full clone (GitHub, fetch-depth 0), or just
    that tag (the harshest GitLab fetch)."""
    if full:
        git(dest.parent, "clone", "-q", str(repo.remote), dest.name)
    else:
        dest.mkdir()
        git(dest, "init", "-q")
        git(dest, "remote", "add", "origin", str(repo.remote))
        git(dest, "fetch", "-q", "origin", f"+refs/tags/{tag}:refs/tags/{tag}")
    git(dest, "checkout", "-q", "--detach", tag)
    return dest


def mr_checkout(repo: Repo, dest: Path, branch: str, full: bool) -> Path:
    """What the runner checks out for a pull/merge request: the source branch's head,
    detached; GitHub fetches everything, the harsh GitLab case only that branch."""
    if full:
        git(dest.parent, "clone", "-q", str(repo.remote), dest.name)
    else:
        dest.mkdir()
        git(dest, "init", "-q")
        git(dest, "remote", "add", "origin", str(repo.remote))
        git(dest, "fetch", "-q", "--no-tags", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}")
    git(dest, "checkout", "-q", "--detach", f"origin/{branch}")
    return dest


@pytest.mark.slow
def test_github_tag_job_validates_records_and_pushes_the_note(repo: Repo, github, tmp_path, runner):
    assert notes_on(repo.remote, P4) is None
    before = {v: notes_on(repo.remote, v) for v in (P1, P2)}
    ci = tag_checkout(repo, tmp_path / "gh-tag", P4, full=True)
    env = base_env(tmp_path, runner) | {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REF": f"refs/tags/{P4}",
        "GITHUB_REF_NAME": P4,
        "GITHUB_REF_TYPE": "tag",
        "GITHUB_WORKSPACE": str(ci),
    }
    context = {"github.ref_name": P4, "github.event_name": "push", "github.base_ref": ""}

    done = github_job(github, "validate", context, ci, env)

    assert_all_ok(done, ["gitreg --version", 'gitreg validate "$GITHUB_REF_NAME" --record --push'])
    record = notes_on(repo.remote, P4)
    assert record is not None and record["passed"] is True and record["version"] == P4
    assert {v: notes_on(repo.remote, v) for v in (P1, P2)} == before  # earlier records kept
    assert git(ci, "config", "user.name") == "gitreg-ci"
    # a developer's clone sees the version as validated after fetching the notes
    repo.git("fetch", "-q", "origin", "+refs/notes/*:refs/notes/*")
    shown = json.loads(run_cli("show", P4, "--json", cwd=repo.path, check=True).stdout)
    assert shown["status"] == "validated"


@pytest.mark.slow
def test_gitlab_tag_job_validates_records_and_pushes_the_note(repo: Repo, gitlab, tmp_path, runner):
    ci = tag_checkout(repo, tmp_path / "gl-tag", P4, full=False)
    env = base_env(tmp_path, runner) | {
        "GITLAB_CI": "true",
        "CI_PIPELINE_SOURCE": "push",
        "CI_COMMIT_TAG": P4,
        "CI_COMMIT_REF_NAME": P4,
        "CI_SERVER_HOST": "gitlab.example.com",
        "CI_PROJECT_PATH": "team/reg",
        "CI_PROJECT_DIR": str(ci),
    }
    done = gitlab_job(gitlab, "gitreg-validate", ci, env)
    assert_all_ok(done, ["gitreg --version", 'gitreg validate "$CI_COMMIT_TAG" --record --push'])
    record = notes_on(repo.remote, P4)
    assert record is not None and record["passed"] is True
    assert notes_on(repo.remote, P1) is not None  # the other records survived the push


def github_pr_env(
    tmp_path: Path, runner: Path, ci: Path, branch: str
) -> tuple[dict[str, str], dict[str, str]]:
    env = base_env(tmp_path, runner) | {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_REF": "refs/pull/7/merge",
        "GITHUB_BASE_REF": "main",
        "GITHUB_HEAD_REF": branch,
        "GITHUB_WORKSPACE": str(ci),
    }
    context = {"github.base_ref": "main", "github.head_ref": branch, "github.event_name": "pull_request"}
    return env, context


def gitlab_mr_env(tmp_path: Path, runner: Path, ci: Path, branch: str) -> dict[str, str]:
    return base_env(tmp_path, runner) | {
        "GITLAB_CI": "true",
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": branch,
        "CI_MERGE_REQUEST_IID": "7",
        "CI_SERVER_HOST": "gitlab.example.com",
        "CI_PROJECT_PATH": "team/reg",
        "CI_PROJECT_DIR": str(ci),
    }


@pytest.mark.slow
def test_pull_request_jobs_pass_a_good_promotion(repo: Repo, github, gitlab, tmp_path, runner):
    direct(repo, P1, "production")
    repo.push_all()
    assert run_cli("promote", P2, "production", cwd=repo.path).returncode == 0
    branch = f"gitreg/policy-production-{P2}"

    gh_ci = mr_checkout(repo, tmp_path / "gh-pr", branch, full=True)
    # what actions/checkout gives lacks the validation records: gitreg check fetches them itself
    assert git(gh_ci, "for-each-ref", "refs/notes/") == ""
    assert run_cli("check", "--base", "origin/main", cwd=gh_ci).returncode == 0
    env, context = github_pr_env(tmp_path, runner, gh_ci, branch)
    done = github_job(github, "check", context, gh_ci, env)
    assert_all_ok(done, ["gitreg --version", 'gitreg check --base "origin/main"'])
    assert "models.yaml: ok" in done[-1][1].stdout
    assert "::error" not in done[-1][1].stdout

    gl_ci = mr_checkout(repo, tmp_path / "gl-mr", branch, full=False)
    done = gitlab_job(gitlab, "gitreg-check", gl_ci, gitlab_mr_env(tmp_path, runner, gl_ci, branch))
    assert_all_ok(
        done, ["gitreg --version", 'gitreg check --base "origin/$CI_MERGE_REQUEST_TARGET_BRANCH_NAME"']
    )
    assert "models.yaml: ok" in done[-1][1].stdout


@pytest.mark.slow
def test_pull_request_jobs_fail_a_bad_manifest_with_annotations(repo: Repo, github, gitlab, tmp_path, runner):
    direct(repo, P1, "production")
    repo.push_all()
    # an unvalidated version forced into production, and staging moved in the same PR
    branch = "hand-edit"
    repo.git("switch", "-q", "-c", branch)
    text = repo.manifest().decode().replace(f"production: {P1}", f"production: {P4}\n      staging: {P2}")
    (repo.path / "models.yaml").write_text(text)
    repo.git("commit", "-q", "-am", "bump by hand")
    repo.git("push", "-q", "origin", branch)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if f"production: {P4}" in ln)

    gh_ci = mr_checkout(repo, tmp_path / "gh-pr", branch, full=True)
    env, context = github_pr_env(tmp_path, runner, gh_ci, branch)
    done = github_job(github, "check", context, gh_ci, env)
    last_line, proc = done[-1]
    assert last_line == 'gitreg check --base "origin/main"'
    assert proc.returncode == 1
    annotations = [ln for ln in proc.stdout.splitlines() if ln.startswith("::error ")]
    assert f"::error file=models.yaml,line={line}::policy production: {P4} has no passing validation" in (
        "\n".join(annotations)
    )
    assert any("2 stages change in one pull request" in a for a in annotations)

    gl_ci = mr_checkout(repo, tmp_path / "gl-mr", branch, full=False)
    done = gitlab_job(gitlab, "gitreg-check", gl_ci, gitlab_mr_env(tmp_path, runner, gl_ci, branch))
    last_line, proc = done[-1]
    assert last_line.startswith("gitreg check")
    assert proc.returncode == 1
    assert f"models.yaml:{line}: error: policy production: {P4}" in proc.stderr
    assert "::error" not in proc.stdout  # annotations are GitHub's


@pytest.mark.slow
def test_init_writes_the_templates_it_ships(repo: Repo):
    assert (repo.path / ".github" / "workflows" / "gitreg.yml").read_text() == templates.read(
        "github-workflow.yml"
    )
    assert (repo.path / "CODEOWNERS").read_text() == templates.read("CODEOWNERS")


@pytest.mark.slow
def test_a_spec_that_provides_no_gitreg_command_fails_the_job_at_once(repo: Repo, github, gitlab, tmp_path):
    """GITREG_PIP_SPEC set to a package without the command (as the unrelated "gitreg" on PyPI
    is): the job stops right after the install, with a message naming the variable."""
    venv = tmp_path / "bare-runner"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    branch = "main"
    gh_ci = mr_checkout(repo, tmp_path / "gh-pr", branch, full=True)
    env, context = github_pr_env(tmp_path, venv, gh_ci, branch)
    context["vars.GITREG_PIP_SPEC"] = "idna"  # installs, but no `gitreg`
    done = github_job(github, "check", context, gh_ci, env)
    line, proc = done[-1]
    assert line.startswith("command -v gitreg") and proc.returncode == 1
    assert "::error::GITREG_PIP_SPEC=idna installed no gitreg command" in proc.stdout
    assert not any(ln.startswith("gitreg ") for ln, _ in done)

    gl_ci = mr_checkout(repo, tmp_path / "gl-mr", branch, full=False)
    done = gitlab_job(
        gitlab,
        "gitreg-check",
        gl_ci,
        gitlab_mr_env(tmp_path, venv, gl_ci, branch) | {"GITREG_PIP_SPEC": "idna"},
    )
    line, proc = done[-1]
    assert line.startswith("command -v gitreg") and proc.returncode == 1
    assert "GITREG_PIP_SPEC=idna installed no gitreg command" in proc.stderr


@pytest.mark.slow
def test_without_torch_the_read_and_lifecycle_commands_work_and_validate_says_what_to_install(
    repo: Repo, tmp_path, runner
):
    """`pip install gitreg-ml` alone (no torch extra): list, show, history, check and promote
    work; validate and serve stop with one line naming the extra."""
    venv = tmp_path / "no-torch"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = base_env(tmp_path, runner)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *env["PATH"].split(os.pathsep)[1:]])
    pip = subprocess.run(
        ["pip", "install", "-q", install_spec()], env=env, capture_output=True, text=True, check=False
    )
    assert pip.returncode == 0, pip.stderr
    assert subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import torch"], capture_output=True, check=False
    ).returncode
    gitreg = str(venv / "bin" / "gitreg")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [gitreg, "-C", str(repo.path), *args], env=env, capture_output=True, text=True, check=False
        )

    for args in (["list"], ["show", P1], ["history"], ["check"], ["promote", P2, "staging", "--direct"]):
        proc = run(*args)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    assert f"staging: {P2}" in (repo.path / "models.yaml").read_text()
    for args in (["validate", P1], ["serve", "--repo", str(repo.remote)]):
        proc = run(*args)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        (line,) = proc.stderr.strip().splitlines()
        assert "needs torch, which is not installed" in line and f"pip install '{DIST_NAME}[torch]'" in line
