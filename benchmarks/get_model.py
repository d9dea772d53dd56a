"""Getting a model by name on a fresh machine: `gitreg --repo URL pull policy@production`
against `git clone` + `gitreg pull` and against `dvc get`, and the floor.

One registry with ``--versions`` versions (default 1,000: one real ``gitreg register`` of a
``--size-mib`` bundle, default 256 MiB, promoted to production, then the rest as annotated
version tags on that commit, written in one ``git fast-import``, as list_scale.py does), pushed
to a bare remote served over ``file://`` with blob filters allowed; a local-folder DVC remote.
Every run starts from nothing: an empty gitreg cache (``GITREG_CACHE_DIR``), no clone, no DVC
cache, the page cache left warm (the remote's bytes are on this machine either way):

* ``gitreg --repo URL pull policy@production --out DIR``: a blob-filtered bare mirror, then the
  bytes straight from the DVC remote, every md5 verified;
* ``git clone URL`` then ``gitreg pull policy@production --out DIR`` in the clone;
* ``dvc get URL models/policy --rev TAG -o DIR`` (DVC's own "get a file from a repo"; it clones
  the repository into a temp folder and does not check the md5 of what it writes);
* floor: ``md5sum`` + ``cp`` of the object out of the DVC remote folder (what any verified get
  must at least do).

Medians of ``--repeat`` runs (interleaved). Prints a table and JSON (benchmarks/results/).

Run:  .venv/bin/python benchmarks/get_model.py [--versions 1000] [--size-mib 256] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from _common import (
    Timed,
    fmt_s,
    isolated_env,
    machine_info,
    median,
    print_table,
    run_timed,
    venv_tool,
    write_results,
)
from bundle_io import make_bundle


def git(args: list[str], cwd: Path, env: dict[str, str], stdin: bytes | None = None) -> str:
    return run_timed(["git", *args], cwd=cwd, env=env, stdin=stdin).check(f"git {args[0]}").stdout.decode()


def extra_versions(repo: Path, env: dict[str, str], source: str, n: int) -> None:
    """``n`` more annotated version tags on ``source``'s commit, one fast-import: each a copy
    of ``source``'s message with its own version name."""
    message = git(["for-each-ref", "--format=%(contents)", f"refs/tags/{source}"], repo, env)
    commit = git(["rev-parse", f"{source}^{{commit}}"], repo, env).strip()
    chunks = []
    for i in range(n):
        name = f"v2024-{1 + i // (28 * 24):02d}-{1 + (i // 24) % 28:02d}--{i % 24:02d}h{i % 60:02d}"
        body = message.replace(source, name).encode()
        chunks.append(
            f"tag {name}\nfrom {commit}\ntagger Bench User <bench@example.com> 1720000000 +0000\n".encode()
            + f"data {len(body)}\n".encode()
            + body
            + b"\n"
        )
    run_timed(["git", "fast-import", "--quiet"], cwd=repo, env=env, stdin=b"".join(chunks)).check(
        "fast-import"
    )


def build(work: Path, env: dict[str, str], versions: int, mib: int) -> tuple[str, str, Path, Path]:
    """(remote URL, the production tag, the DVC remote folder, the bundle's object there)."""
    gitreg = venv_tool("gitreg")
    bare = work / "remote.git"
    git(["init", "-q", "--bare", "-b", "main", str(bare)], work, env)
    git(["config", "uploadpack.allowFilter", "true"], bare, env)
    repo = work / "registry"
    repo.mkdir()
    dvc_remote = work / "dvc-remote"
    run_timed([gitreg, "init", "--ci", "none", "--remote", str(dvc_remote)], cwd=repo, env=env).check("init")
    git(["remote", "add", "origin", str(bare)], repo, env)
    bundle = make_bundle(work, mib)
    tag = "v2025-07-06--18h51"
    reg = run_timed(
        [gitreg, "register", str(bundle), "--model", "policy", "--version", tag, "--push", "--json"],
        cwd=repo,
        env=env,
    ).check("register")
    md5 = next(f["md5"] for f in json.loads(reg.stdout)["files"] if f["path"] == "policy.pt")
    shutil.rmtree(bundle)
    extra_versions(repo, env, tag, versions - 1)
    run_timed(
        [gitreg, "promote", tag, "production", "--direct", "--push", "--force"], cwd=repo, env=env
    ).check("promote")
    git(["push", "-q", "origin", "--tags"], repo, env)
    shutil.rmtree(repo)
    return f"file://{bare}", tag, dvc_remote, dvc_remote / "files" / "md5" / md5[:2] / md5[2:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    gitreg, dvc = venv_tool("gitreg"), venv_tool("dvc")
    runs: dict[str, list[Timed]] = {
        "gitreg --repo": [],
        "git clone + gitreg pull": [],
        "dvc get": [],
        "floor": [],
    }
    with isolated_env("get") as (work, env):
        url, tag, _dvc_remote, obj = build(work, env, args.versions, args.size_mib)
        for r in range(args.repeat):
            fresh = work / f"run-{r}"
            fresh.mkdir()
            cache_env = {**env, "GITREG_CACHE_DIR": str(fresh / "cache")}
            out = fresh / "a"
            runs["gitreg --repo"].append(
                run_timed(
                    [gitreg, "--repo", url, "pull", "policy@production", "--out", str(out)],
                    cwd=fresh,
                    env=cache_env,
                ).check("gitreg --repo pull")
            )
            clone_and_pull = 'git clone -q "$1" clone && cd clone && "$2" pull policy@production --out "$3"'
            runs["git clone + gitreg pull"].append(
                run_timed(
                    ["sh", "-c", clone_and_pull, "sh", url, gitreg, str(fresh / "b")],
                    cwd=fresh,
                    env=cache_env,
                ).check("git clone + gitreg pull")
            )
            runs["dvc get"].append(
                run_timed(
                    [dvc, "get", url, "models/policy", "--rev", tag, "-o", str(fresh / "c")],
                    cwd=fresh,
                    env=env,
                ).check("dvc get")
            )
            runs["floor"].append(
                run_timed(
                    ["sh", "-c", 'md5sum "$1" && cp "$1" "$2"', "sh", str(obj), str(fresh / "d.pt")]
                ).check("md5sum + cp")
            )
            for got in (out / "policy.pt", fresh / "b" / "policy.pt", fresh / "c" / "policy.pt"):
                if got.stat().st_size != args.size_mib << 20:
                    raise SystemExit(f"{got}: wrong size")
            shutil.rmtree(fresh)
    floor = median([t.seconds for t in runs["floor"]])
    result: dict[str, Any] = {
        "versions": args.versions,
        "size_mib": args.size_mib,
        "repeat": args.repeat,
        "machine": machine_info(),
        "results": {
            name: {
                "median_s": median([t.seconds for t in ts]),
                "runs_s": [round(t.seconds, 3) for t in ts],
                "over_floor": median([t.seconds for t in ts]) / floor,
                "max_rss_kib": max(t.max_rss_kib for t in ts),
            }
            for name, ts in runs.items()
        },
    }
    print(json.dumps(result, indent=2))
    write_results("get_model", result)
    print_table(
        f"get policy@production on a fresh machine: {args.versions} versions, {args.size_mib} MiB bundle "
        f"(median of {args.repeat})",
        ["how", "seconds", "× floor", "peak RSS MiB"],
        [
            [name, fmt_s(v["median_s"]), f"{v['over_floor']:.2f}", f"{v['max_rss_kib'] / 1024:.0f}"]
            for name, v in result["results"].items()
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
