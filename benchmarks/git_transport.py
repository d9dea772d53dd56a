"""Clone, fetch and push of a registry with many version tags: a bare ``git`` subprocess vs
GitPython (``Repo.clone_from``, ``Remote.fetch``, ``Remote.push`` with a ``RemoteProgress``),
in the same run, on the same repositories; plus what importing GitPython costs at start-up.

The registry: ``--tags`` (default 2,000) commits, each with an annotated version tag, built
once with ``git fast-import``; the origin is a bare copy reached through ``file://`` (the pack
protocol, as with a real remote, not the local-clone hard-link shortcut). Per repetition:

* clone: ``git clone --mirror`` (what ``gitreg serve`` does first);
* fetch: a mirror that lacks the last 10% of the tags fetches them (``fetch --prune --force``);
* fetch (no-op): the same fetch again, nothing to move;
* push: every tag to an empty bare repository (``push URL refs/tags/*``).

Variants: ``subprocess`` (``git -q``, no progress), ``subprocess+progress`` (``--progress`` with
stderr read line by line, what a hand-made progress bar needs) and ``gitpython`` (progress
through a ``RemoteProgress`` that counts its callbacks). Times are medians of ``--repeat``
runs; import cost is the median wall time of ``python -c "import git"`` minus ``python -c
"pass"`` (fresh interpreters), and ``-X importtime``'s cumulative figure for ``git``.

Run:  .venv/bin/python benchmarks/git_transport.py [--tags 2000] [--repeat 5] [--json-only]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1"}
IDENT = "gitreg-bench <bench@example.com> 1700000000 +0000"


def git(*args: str, cwd: Path | None = None, input: bytes | None = None) -> bytes:
    return subprocess.run(
        ["git", *args], cwd=cwd, input=input, env=ENV, check=True, capture_output=True
    ).stdout


def build_registry(root: Path, n: int) -> Path:
    """A repo with ``n`` commits (one metadata.json each) and an annotated tag on each."""
    src = root / "registry"
    git("init", "-q", "-b", "main", str(src))
    lines: list[bytes] = []
    for i in range(1, n + 1):
        data = json.dumps({"model": "policy", "n": i, "metrics": {"reward": i / n}}).encode()
        msg = f"register policy v{i}\n".encode()
        lines += [
            b"commit refs/heads/main",
            f"mark :{i}".encode(),
            f"committer {IDENT}".encode(),
            f"data {len(msg)}".encode(),
            msg,
            b"M 100644 inline models/policy/metadata.json",
            f"data {len(data)}".encode(),
            data,
        ]
        name = f"v2025-01-01--{i // 60 % 24:02d}h{i % 60:02d}-{i:05d}"
        tag = f"policy {name}\n\n---gitreg---\n{data.decode()}\n".encode()
        lines += [
            f"tag {name}".encode(),
            f"from :{i}".encode(),
            f"tagger {IDENT}".encode(),
            f"data {len(tag)}".encode(),
            tag,
        ]
    git("fast-import", "--quiet", cwd=src, input=b"\n".join(lines) + b"\n")
    git("gc", "-q", cwd=src)
    return src


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_progress(args: list[str], cwd: Path | None = None) -> int:
    """``git`` with ``--progress``: stderr read as progress lines ("\\r" or "\\n" ended)."""
    proc = subprocess.Popen(
        ["git", *args], cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    updates = 0
    pattern = re.compile(rb"(\d+)% \((\d+)/(\d+)\)")
    for chunk in iter(lambda: proc.stderr.read1(8192), b""):  # type: ignore[union-attr]
        updates += len(pattern.findall(chunk))
    if proc.wait() != 0:
        raise RuntimeError(f"git {' '.join(args)} failed")
    return updates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tags", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json-only", action="store_true")
    opts = ap.parse_args()

    import_ms = import_cost()
    from git import RemoteProgress, Repo  # the import is measured above, in fresh interpreters

    class Counter(RemoteProgress):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def update(self, op_code: int, cur_count: Any, max_count: Any = None, message: str = "") -> None:
            self.calls += 1

    results: dict[str, dict[str, list[float]]] = {}
    callbacks: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="gitreg-bench-git-") as tmp_s:
        tmp = Path(tmp_s)
        t0 = time.perf_counter()
        src = build_registry(tmp, opts.tags)
        origin = tmp / "origin.git"
        git("clone", "-q", "--bare", str(src), str(origin))
        build_s = time.perf_counter() - t0
        url = origin.as_uri()
        tags = git("tag", "--list", cwd=src).decode().split()
        keep = tags[: len(tags) * 9 // 10]

        def fresh(name: str) -> Path:
            p = tmp / name
            shutil.rmtree(p, ignore_errors=True)
            return p

        def behind_mirror(name: str) -> Path:
            """A mirror of origin that lacks the newest 10% of the tags (and their commits)."""
            p = fresh(name)
            git("clone", "-q", "--mirror", url, str(p))
            drop = tags[len(keep) :]
            git("tag", "-d", *drop, cwd=p)
            git("update-ref", "refs/heads/main", f"refs/tags/{keep[-1]}^{{commit}}", cwd=p)
            git("reflog", "expire", "--expire=now", "--all", cwd=p)
            git("gc", "-q", "--prune=now", cwd=p)
            return p

        def empty_bare(name: str) -> Path:
            p = fresh(name)
            git("init", "-q", "--bare", str(p))
            return p

        def gp_clone() -> None:
            cb = Counter()
            Repo.clone_from(url, fresh("gp-clone"), mirror=True, progress=cb, env=ENV)
            callbacks["clone"] = cb.calls

        def gp_fetch(p: Path, key: str) -> Callable[[], None]:
            def go() -> None:
                cb = Counter()
                repo = Repo(p)
                with repo.git.custom_environment(**ENV):
                    repo.remote("origin").fetch(prune=True, force=True, progress=cb)
                callbacks[key] = cb.calls

            return go

        def gp_push(dst: Path) -> Callable[[], None]:
            def go() -> None:
                cb = Counter()
                repo = Repo(src)
                with repo.git.custom_environment(**ENV):
                    from git import Remote

                    info = Remote(repo, dst.as_uri()).push("refs/tags/*:refs/tags/*", progress=cb)
                    info.raise_if_error()
                callbacks["push"] = cb.calls

            return go

        def sp_fetch(p: Path) -> Callable[[], Any]:
            return lambda: git("fetch", "-q", "--prune", "--force", "origin", cwd=p)

        def spp_fetch(p: Path) -> Callable[[], Any]:
            return lambda: run_progress(["fetch", "--progress", "--prune", "--force", "origin"], cwd=p)

        def sp_push(d: Path) -> Callable[[], Any]:
            return lambda: git("push", "-q", d.as_uri(), "refs/tags/*:refs/tags/*", cwd=src)

        def spp_push(d: Path) -> Callable[[], Any]:
            return lambda: run_progress(
                ["push", "--progress", d.as_uri(), "refs/tags/*:refs/tags/*"], cwd=src
            )

        # each entry: a set-up run before the timed action it returns (set-ups are not timed)
        cases: dict[str, dict[str, Callable[[], Callable[[], Any]]]] = {
            "clone": {
                "subprocess": lambda: lambda: git("clone", "-q", "--mirror", url, str(fresh("sp-clone"))),
                "subprocess+progress": lambda: (
                    lambda: run_progress(["clone", "--progress", "--mirror", url, str(fresh("spp-clone"))])
                ),
                "gitpython": lambda: gp_clone,
            },
            "fetch": {
                "subprocess": lambda: sp_fetch(behind_mirror("sp-fetch")),
                "subprocess+progress": lambda: spp_fetch(behind_mirror("spp-fetch")),
                "gitpython": lambda: gp_fetch(behind_mirror("gp-fetch"), "fetch"),
            },
            "fetch (no-op)": {
                "subprocess": lambda: sp_fetch(tmp / "sp-clone"),
                "subprocess+progress": lambda: spp_fetch(tmp / "spp-clone"),
                "gitpython": lambda: gp_fetch(tmp / "gp-clone", "fetch (no-op)"),
            },
            "push": {
                "subprocess": lambda: sp_push(empty_bare("sp-push.git")),
                "subprocess+progress": lambda: spp_push(empty_bare("spp-push.git")),
                "gitpython": lambda: gp_push(empty_bare("gp-push.git")),
            },
        }
        for _ in range(opts.repeat):
            for op, variants in cases.items():  # variants interleaved: the same load for each
                for variant, setup in variants.items():
                    action = setup()
                    results.setdefault(op, {}).setdefault(variant, []).append(timed(action))
        assert len(git("tag", "--list", cwd=tmp / "gp-push.git").split()) == opts.tags
        assert len(git("tag", "--list", cwd=tmp / "gp-fetch").split()) == opts.tags

    medians = {op: {v: statistics.median(ts) for v, ts in vs.items()} for op, vs in results.items()}
    report = {
        "benchmark": "git_transport",
        "tags": opts.tags,
        "repeat": opts.repeat,
        "build_s": round(build_s, 2),
        "git": git("--version").decode().strip(),
        "gitpython": __import__("git").__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "median_s": {op: {v: round(t, 4) for v, t in vs.items()} for op, vs in medians.items()},
        "gitpython_progress_callbacks": callbacks,
        "import_git_ms": import_ms,
    }
    print(json.dumps(report, indent=2))
    if opts.json_only:
        return
    print(f"\n{opts.tags} tags, median of {opts.repeat}; {report['git']}, GitPython {report['gitpython']}")
    print(f"{'operation':<15}{'subprocess':>12}{'+progress':>12}{'gitpython':>12}{'gp/sp':>8}")
    for op, vs in medians.items():
        sp, spp, gp = vs["subprocess"], vs["subprocess+progress"], vs["gitpython"]
        print(f"{op:<15}{sp * 1000:>10.0f}ms{spp * 1000:>10.0f}ms{gp * 1000:>10.0f}ms{gp / sp:>7.2f}x")
    print(
        f"import git: {import_ms['wall_ms']:.0f} ms wall over a bare interpreter "
        f"(-X importtime cumulative: {import_ms['importtime_ms']:.0f} ms)"
    )


def import_cost(runs: int = 7) -> dict[str, float]:
    def wall(code: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=ENV)
        return time.perf_counter() - t0

    bare = statistics.median(wall("pass") for _ in range(runs))
    with_git = statistics.median(wall("import git") for _ in range(runs))
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import git"],
        check=True,
        env=ENV,
        capture_output=True,
        text=True,
    ).stderr
    cumulative = [int(line.split("|")[1]) for line in err.splitlines() if line.rstrip().endswith("| git")]
    return {
        "wall_ms": round((with_git - bare) * 1000, 1),
        "importtime_ms": round((cumulative[-1] if cumulative else 0) / 1000, 1),
    }


if __name__ == "__main__":
    main()
