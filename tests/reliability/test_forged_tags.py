"""A version is a version only if it is whole (issue 15): tags that only look like versions.

Each crafted tag kind (on a blob, on a tree, lightweight, on a commit without the model folder,
with a pointer that does not parse, with a summary naming another version or model, a model
named ``../../etc``, a 200,000-file summary, a huge suffix) is ignored by list, report and
status, refused by show and pull with one line that says why, and reported by `gitreg doctor`
once. The list cache remembers the answer: a second listing reads no tag object.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gitreg.metadata import TAG_BLOCK_BEGIN, TAG_BLOCK_END
from gitreg.testing.bundles import write_bundle
from gitreg.testing.cli import run_cli
from gitreg.testing.clock import FixedClock
from gitreg.testing.env import isolated_home
from gitreg.testing.repos import git

V1 = "v2025-07-01--10h00"
# name -> (the tag's name, what show/pull must say about it)
KINDS: dict[str, tuple[str, str]] = {
    "blob": ("v2025-07-02--10h00", "it points at a blob, not a commit"),
    "tree": ("v2025-07-02--10h01", "it points at a tree, not a commit"),
    "lightweight": ("v2025-07-02--10h02", "lightweight tag"),
    "no-folder": ("v2025-07-02--10h03", "its commit has no models/policy"),
    "bad-pointer": ("v2025-07-02--10h04", "not a valid DVC pointer"),
    "other-version": ("v2025-07-02--10h05", f"names version {V1!r}"),
    "other-model": ("v2025-07-02--10h06", "its commit has no models/other"),
    "etc-model": ("v2025-07-02--10h07", "'../../etc' is not a valid model name"),
    "200k-files": ("v2025-07-02--10h08", "the limit is"),
    "huge-suffix": ("v2025-07-02--10h09-99999999999999999999", "is not a version name"),
}
NAMES = [name for name, _ in KINDS.values()]


def tag(repo: Path, name: str, target: str, message: str) -> None:
    subprocess.run(
        ["git", "tag", "-a", "--cleanup=verbatim", "-F", "-", name, target],
        cwd=repo,
        input=message,
        text=True,
        check=True,
    )


def huge_summary(message: str, name: str, files: int) -> str:
    """``message`` with its summary block naming ``name`` and listing ``files`` files."""
    head, _, rest = message.partition(TAG_BLOCK_BEGIN + "\n")
    block, _, _ = rest.partition("\n" + TAG_BLOCK_END)
    summary = json.loads(block)
    summary["version"] = name
    one = summary["files"][0]
    summary["files"] = [{**one, "path": f"f{i}.bin"} for i in range(files)]
    return f"{head}{TAG_BLOCK_BEGIN}\n{json.dumps(summary, indent=2)}\n{TAG_BLOCK_END}\n"


@pytest.fixture(scope="module")
def forged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real version (V1) and one tag of each crafted kind."""
    from gitreg.registry import Registry

    base = tmp_path_factory.mktemp("forged")
    repo = base / "registry"
    with isolated_home(base / "home"):
        Registry.init(repo, remote=str(base / "dvc-remote"), ci="none")
        reg = Registry(repo, clock=FixedClock(datetime(2025, 7, 1, 10, 0, 30, tzinfo=UTC)))
        reg.register(write_bundle(base / "b1", 1), "policy", version=V1)
        message = git(repo, "for-each-ref", "--format=%(contents)", f"refs/tags/{V1}")

        def copy(kind: str) -> str:
            return message.replace(V1, KINDS[kind][0])

        blob = subprocess.run(
            ["git", "hash-object", "-w", "--stdin"], cwd=repo, input=b"x", capture_output=True, check=True
        ).stdout.decode()
        tag(repo, KINDS["blob"][0], blob.strip(), copy("blob"))
        tag(repo, KINDS["tree"][0], "HEAD^{tree}", copy("tree"))
        git(repo, "tag", KINDS["lightweight"][0], "HEAD")
        root = git(repo, "rev-list", "--max-parents=0", "HEAD")  # `gitreg init`: no models/ yet
        tag(repo, KINDS["no-folder"][0], root, copy("no-folder"))
        tag(repo, KINDS["other-version"][0], "HEAD", message)
        tag(
            repo,
            KINDS["other-model"][0],
            "HEAD",
            copy("other-model").replace('"model": "policy"', '"model": "other"'),
        )
        tag(
            repo,
            KINDS["etc-model"][0],
            "HEAD",
            copy("etc-model").replace('"model": "policy"', '"model": "../../etc"'),
        )
        tag(repo, KINDS["200k-files"][0], "HEAD", huge_summary(message, KINDS["200k-files"][0], 200_000))
        tag(repo, KINDS["huge-suffix"][0], "HEAD", copy("huge-suffix"))
        pointer = repo / "models" / "policy" / "policy.pt.dvc"
        good = pointer.read_text()
        pointer.write_text("outs: [ {md5: unclosed\n")
        git(repo, "commit", "-qam", "broken pointer")
        tag(repo, KINDS["bad-pointer"][0], "HEAD", copy("bad-pointer"))
        pointer.write_text(good)
        git(repo, "commit", "-qam", "restore the pointer")
    return repo


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stdout
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and "Traceback" not in err, err
    return err


def test_list_report_and_status_show_only_the_whole_version(forged: Path) -> None:
    listed = json.loads(run_cli("list", "--json", "--limit", "0", cwd=forged, check=True).stdout)
    assert [row["version"] for row in listed] == [V1]
    assert json.loads(run_cli("list", "--json", cwd=forged, check=True).stdout) == listed  # warm
    for command in (("report", "--json"), ("status", "--json")):
        out = run_cli(*command, cwd=forged, check=True).stdout
        assert V1 in out or command[0] == "status", out[:2000]
        for name in NAMES:
            assert name not in out, (command, name)


@pytest.mark.parametrize("kind", list(KINDS))
def test_show_and_pull_refuse_a_forged_tag_with_one_line(forged: Path, tmp_path: Path, kind: str) -> None:
    name, why = KINDS[kind]
    t0 = time.perf_counter()
    err = one_line_error(run_cli("show", name, cwd=forged))
    assert time.perf_counter() - t0 < 20, "show of a forged tag must not parse it at length"
    assert why in err, err
    assert "commit" not in err or kind not in ("blob", "tree") or "not a commit" in err, err
    out = tmp_path / "pulled"
    err = one_line_error(run_cli("pull", name, "--out", str(out), cwd=forged))
    assert why in err, err
    assert not out.exists()


def test_doctor_reports_each_forged_tag_once(forged: Path) -> None:
    proc = run_cli("doctor", "--json", cwd=forged)
    assert proc.returncode == 1, proc.stderr
    assert len(proc.stdout) < 50_000, "a 200,000-file summary must not make doctor print 200,000 lines"
    report = json.loads(proc.stdout)
    assert report["versions"] == 1
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for finding in report["findings"]:
        by_subject.setdefault(finding["subject"], []).append(finding)
    for name in NAMES:
        assert len(by_subject.get(name, [])) == 1, (name, by_subject.get(name))
        assert by_subject[name][0]["check"] in ("tag", "pointer")
    assert not any(f["subject"] == V1 and f["check"] in ("tag", "pointer") for f in report["findings"])


def git_processes(repo: Path, trace: Path, *args: str) -> list[list[str]]:
    """The argv of every git process a CLI run started itself (git's trace2 event log)."""
    os.environ.pop("GIT_TRACE2_PARENT_SID", None)
    proc = run_cli(*args, cwd=repo, env={"GIT_TRACE2_EVENT": str(trace)})
    assert proc.returncode == 0, proc.stderr
    calls = []
    for line in trace.read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "start" and "/" not in event["sid"]:
            calls.append(event["argv"][1:])
    return calls


def test_the_list_cache_remembers_which_tags_are_no_versions(forged: Path, tmp_path: Path) -> None:
    cache = forged / ".git" / "gitreg" / "list-cache"
    cache.unlink(missing_ok=True)
    cold = git_processes(forged, tmp_path / "cold.jsonl", "list", "--json", "--limit", "0")
    # every tag (and every whole-version check) through one `git cat-file --batch`
    assert [c[0] for c in cold].count("cat-file") == 1, cold
    assert not {c[0] for c in cold} & {"show", "log", "ls-tree"}, cold
    warm = git_processes(forged, tmp_path / "warm.jsonl", "list", "--json", "--limit", "0")
    assert [c[0] for c in warm].count("cat-file") == 0, warm  # no tag checked again
    assert len(warm) == len(cold) - 1
