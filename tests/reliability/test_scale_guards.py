"""Guards for the read path's cost: `gitreg list` (and show/compare) import neither torch nor DVC,
and spawn the same number of git processes whatever the number of versions (fewer when the list
cache already holds every tag: see test_list_cache.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gitreg.testing.cli import run_cli
from gitreg.testing.repos import git

HEAVY = ("torch", "dvc", "git")  # `git` is GitPython: the read path runs plain `git` processes

PROBE = """
import json, sys
watched = set(json.loads(sys.argv[2]))
sys.argv = ["gitreg", *json.loads(sys.argv[1])]
from gitreg.cli import main
code = 0
try:
    main()
except SystemExit as e:
    code = e.code or 0
heavy = sorted({m.split(".")[0] for m in sys.modules} & watched)
sys.stderr.write("PROBE " + json.dumps({"code": code, "heavy": heavy}) + "\\n")
"""


def register_some(repo: Path, clock: Any, make_bundle: Any, n: int) -> list[str]:
    from gitreg.registry import Registry

    reg = Registry(repo, clock=clock)
    versions = []
    for i in range(n):
        versions.append(reg.register(make_bundle(i, policy=os.urandom(256 + i)), "policy").version)
        clock.advance(minutes=1)
    return versions


def add_validation_note(repo: Path, version: str, passed: bool = True) -> None:
    record = {"schema": 1, "version": version, "passed": passed, "checked_at": "2025-07-08T00:00:00Z"}
    obj = git(repo, "rev-parse", f"refs/tags/{version}")
    git(repo, "notes", "--ref=refs/notes/gitreg", "add", "-f", "-m", json.dumps(record), obj)


def probe(repo: Path, args: list[str]) -> tuple[list[str], Any]:
    """Run the CLI's main in a fresh interpreter; (heavy top-level packages it imported, its JSON)."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in proc.stderr.splitlines() if line.startswith("PROBE ")]
    assert len(lines) == 1, proc.stderr
    result = json.loads(lines[0].removeprefix("PROBE "))
    assert result["code"] == 0, proc.stderr
    return result["heavy"], json.loads(proc.stdout)


def test_read_commands_import_neither_torch_nor_dvc(repo_dir: Path, clock: Any, make_bundle: Any) -> None:
    v1, v2 = register_some(repo_dir, clock, make_bundle, 2)
    add_validation_note(repo_dir, v1)

    heavy, rows = probe(repo_dir, ["list", "--json"])
    assert heavy == [], f"`gitreg list` imported {heavy}"
    assert [r["version"] for r in rows] == [v2, v1]  # it really did its work
    assert rows[1]["status"] == "validated"

    heavy, shown = probe(repo_dir, ["show", v1, "--json"])
    assert heavy == [], f"`gitreg show` imported {heavy}"
    assert shown["version"] == v1

    heavy, compared = probe(repo_dir, ["compare", v1, v2, "--json"])
    assert heavy == [], f"`gitreg compare` imported {heavy}"
    assert compared["versions"] == [v1, v2]

    # The probe itself can see a heavy import: pulling a bundle does use DVC.
    heavy, _ = probe(repo_dir, ["pull", v1, "--out", str(repo_dir.parent / "pulled"), "--json"])
    assert "dvc" in heavy


def top_level_git_calls(repo: Path, tmp_path: Path, *args: str) -> tuple[list[list[str]], Any]:
    """Run the CLI with git's trace2 event log on; return the argv of every git process gitreg
    started itself (children that git spawns have a '/' in their session id) and the JSON out."""
    trace = tmp_path / f"trace-{len(list(tmp_path.glob('trace-*')))}.jsonl"
    env = {"GIT_TRACE2_EVENT": str(trace)}
    os.environ.pop("GIT_TRACE2_PARENT_SID", None)
    proc = run_cli(*args, cwd=repo, env=env)
    assert proc.returncode == 0, proc.stderr
    calls = []
    for line in trace.read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "start" and "/" not in event["sid"]:
            calls.append(event["argv"][1:])
    return calls, json.loads(proc.stdout)


def clone_version_tags(repo: Path, source: str, names: list[str]) -> None:
    """Annotated tags named ``names``, each a copy of ``source``'s message with its own version
    in the summary block, all on ``source``'s commit: cheap extra versions."""
    message = git(repo, "for-each-ref", "--format=%(contents)", f"refs/tags/{source}")
    assert f'"version": "{source}"' in message
    commit = git(repo, "rev-parse", f"{source}^{{commit}}")
    for name in names:
        subprocess.run(
            ["git", "tag", "-a", "--cleanup=verbatim", "-F", "-", name, commit],
            cwd=repo,
            input=message.replace(source, name),
            text=True,
            check=True,
        )


@pytest.mark.slow
def test_list_spawns_the_same_git_processes_for_3_and_60_versions(
    repo_dir: Path, clock: Any, make_bundle: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    versions = register_some(repo_dir, clock, make_bundle, 3)
    add_validation_note(repo_dir, versions[0])
    add_validation_note(repo_dir, versions[1], passed=False)

    # The first command in a clone configures the remote to bring the notes (and fetches them
    # once): a one-time cost, measured on its own.
    first_calls, _ = top_level_git_calls(repo_dir, tmp_path, "show", versions[0], "--json")
    assert [c[:2] for c in first_calls].count(["config", "--add"]) == 1
    small_calls, small_rows = top_level_git_calls(repo_dir, tmp_path, "list", "--json", "--limit", "0")
    assert [r["version"] for r in small_rows] == versions[::-1]
    assert [r["status"] for r in small_rows] == ["registered", "failed", "validated"]

    start = datetime(2025, 7, 8, 0, 0, tzinfo=UTC)
    extra = [f"v{(start + timedelta(minutes=i)):%Y-%m-%d--%Hh%M}" for i in range(57)]
    clone_version_tags(repo_dir, versions[0], extra)
    for name in extra[::2]:
        add_validation_note(repo_dir, name)

    big_calls, big_rows = top_level_git_calls(repo_dir, tmp_path, "list", "--json", "--limit", "0")
    assert len(big_rows) == 60
    assert [r["version"] for r in big_rows[:2]] == [extra[-1], extra[-2]]
    assert sum(r["status"] == "validated" for r in big_rows) == 1 + len(extra[::2])
    assert {r["model"] for r in big_rows} == {"policy"}

    assert len(big_calls) == len(small_calls), (small_calls, big_calls)
    assert [c[0] for c in big_calls] == [c[0] for c in small_calls]
    assert len(small_calls) <= 6, small_calls
    assert not {c[0] for c in big_calls} & {"checkout", "show", "log", "ls-tree", "switch"}

    # Both runs above read tags the list cache (.git/gitreg/list-cache) lacked: the 3, then the
    # 57 new ones, through one `git cat-file --batch`. Now every tag is cached: the default
    # limit (50) reads no object at all, and returns the newest 50.
    assert [c[0] for c in small_calls].count("cat-file") == 1
    default_calls, default_rows = top_level_git_calls(repo_dir, tmp_path, "list", "--json")
    assert len(default_rows) == 50
    assert default_rows[0]["version"] == extra[-1]
    assert default_calls == [c for c in small_calls if c[0] != "cat-file"]
    warm_calls, warm_rows = top_level_git_calls(repo_dir, tmp_path, "list", "--json", "--limit", "0")
    assert warm_rows == big_rows
    assert warm_calls == default_calls

    # Without the cache (GITREG_LIST_CACHE=0) every listing is cold: the same calls as the first.
    monkeypatch.setenv("GITREG_LIST_CACHE", "0")
    uncached_calls, uncached_rows = top_level_git_calls(repo_dir, tmp_path, "list", "--json", "--limit", "0")
    assert uncached_rows == big_rows
    assert [c[0] for c in uncached_calls] == [c[0] for c in small_calls]
