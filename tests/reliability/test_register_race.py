"""Machines racing: three real clones of one bare origin `register --push` at once, in the same
minute (a fixed clock), and every version ends distinct, pushed, and naming its own bytes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from gitreg.testing.repos import git

pytestmark = pytest.mark.slow

#: One machine: sets up, says "ready", waits for the parent's "go" (the barrier), then registers
#: its bundles with --push, printing one JSON line per registration.
MACHINE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from gitreg.registry import Registry
    from gitreg.testing.clock import FixedClock

    root, machine, count, scratch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    reg = Registry(root, clock=FixedClock())
    meta = {"algo": "DQN", "framework": "torch", "created_at": "2025-07-06T18:51:23+00:00"}
    bundles = []
    for i in range(count):
        b = scratch / f"m{machine}-{i}"
        b.mkdir(parents=True)
        (b / "policy.pt").write_bytes(f"machine {machine} bundle {i}".encode())
        (b / "metadata.json").write_text(json.dumps(meta))
        bundles.append(b)
    print("ready", flush=True)
    sys.stdin.readline()
    for i, b in enumerate(bundles):
        r = reg.register(b, "policy", push=True)
        row = {"version": r.version, "bundle": f"m{machine}-{i}", "retries": r.retries}
        print(json.dumps(row), flush=True)
    """
)


def _pointer_md5(repo: Path, rev: str) -> str:
    text = git(repo, "show", f"{rev}:models/policy/policy.pt.dvc")
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if "md5:" in line)


def test_three_clones_register_at_once_with_push(registry: Any, tmp_path: Path, bare_remote: Path) -> None:
    from gitreg.registry import Registry

    machines, each = 3, 2
    first = tmp_path / "first"
    first.mkdir()
    (first / "policy.pt").write_bytes(b"the first bundle")
    (first / "metadata.json").write_text(
        json.dumps({"algo": "DQN", "framework": "torch", "created_at": "2025-07-06T18:51:23+00:00"})
    )
    registry.register(first, "policy", push=True)  # origin has main and the model
    clones = [tmp_path / f"machine{m}" for m in range(machines)]
    for clone in clones:
        subprocess.run(["git", "clone", "-q", str(bare_remote), str(clone)], check=True)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MACHINE, str(clone), str(m), str(each), str(tmp_path / "scratch")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for m, clone in enumerate(clones)
    ]
    for p in procs:  # the barrier: all set up before any starts
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results: list[list[dict[str, Any]]] = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        results.append([json.loads(line) for line in out.splitlines() if line.strip()])

    versions = [r["version"] for rows in results for r in rows]
    assert len(versions) == machines * each and len(set(versions)) == machines * each
    assert sum(r["retries"] for rows in results for r in rows) >= 1  # they did collide
    origin_tags = dict(
        reversed(line.split("\t"))
        for line in git(bare_remote, "ls-remote", "--tags", "--refs", ".").splitlines()
    )
    origin_tags = {ref.removeprefix("refs/tags/"): sha for ref, sha in origin_tags.items()}
    assert set(versions) <= set(origin_tags) and len(origin_tags) == machines * each + 1
    on_main = set(git(bare_remote, "rev-list", "--first-parent", "main").split())
    for m, rows in enumerate(results):
        for r in rows:
            data = f"machine {m} bundle {r['bundle'].split('-')[1]}".encode()
            assert _pointer_md5(bare_remote, r["version"]) == hashlib.md5(data).hexdigest(), r
            assert git(bare_remote, "rev-parse", f"{r['version']}^{{commit}}") in on_main
            assert git(clones[m], "rev-parse", f"refs/tags/{r['version']}") == origin_tags[r["version"]]
        assert git(clones[m], "status", "--porcelain") == ""
        report = Registry(clones[m]).doctor(remote_check=True)
        assert report.ok, report.findings
        assert git(clones[m], "rev-parse", "HEAD") == git(
            clones[m], "rev-parse", f"{rows[-1]['version']}^{{commit}}"
        )


def test_a_new_model_registered_after_another_machine_added_one_is_rebased_and_renamed(
    registry: Any, tmp_path: Path, bare_remote: Path, clock: Any
) -> None:
    from gitreg.registry import Registry

    def bundle(name: str) -> Path:
        b = tmp_path / name
        b.mkdir()
        (b / "policy.pt").write_bytes(name.encode())
        meta = {"algo": "DQN", "framework": "torch", "created_at": "2025-07-06T18:51:23+00:00"}
        (b / "metadata.json").write_text(json.dumps(meta))
        return b

    registry.register(bundle("first"), "policy", push=True)
    one, two = tmp_path / "one", tmp_path / "two"
    for clone in (one, two):
        git(tmp_path, "clone", "-q", str(bare_remote), str(clone))
    a = Registry(one, clock=clock).register(bundle("alpha"), "alpha", push=True)
    b = Registry(two, clock=clock).register(bundle("beta"), "beta", push=True)  # same minute, stale base
    assert b.retries == 1 and b.pushed and b.version != a.version
    models = git(bare_remote, "show", "main:models.yaml")
    assert "alpha:" in models and "beta:" in models  # both additions kept
    assert git(two, "rev-parse", "HEAD") == git(bare_remote, "rev-parse", "main")
    assert git(two, "rev-parse", f"refs/tags/{b.version}") == git(
        bare_remote, "rev-parse", f"refs/tags/{b.version}"
    )
    assert git(two, "rev-parse", f"refs/tags/{a.version}") == git(
        bare_remote, "rev-parse", f"refs/tags/{a.version}"
    )
    assert git(two, "status", "--porcelain") == ""
    assert (two / "models" / "alpha" / "policy.pt.dvc").exists()  # the working tree followed
    md5 = hashlib.md5(b"beta").hexdigest()
    assert md5 in git(bare_remote, "show", f"{b.version}:models/beta/policy.pt.dvc")
    assert Registry(two).doctor(remote_check=True).ok
