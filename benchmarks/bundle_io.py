"""How fast gitreg moves a big bundle, against the floor of moving the same bytes by hand.

A bundle of ``policy.pt`` (random bytes, written in chunks, never held in memory) and
``metadata.json``; for each size (``--size-mib 1024``, or ``--sizes-mib 256,1024`` to see
whether peak memory grows with the bundle), in a fresh registry each repetition:

* register: ``gitreg register`` (local-folder DVC remote) vs ``md5sum policy.pt && cp policy.pt
  dest/`` (same file, same filesystem);
* pull (local): ``gitreg pull`` with ``.dvc/cache`` removed vs ``cp`` of the same object out of
  the remote folder (and, as ``pull-local-md5``, vs ``md5sum`` + ``cp``: pull verifies every md5,
  and md5 alone runs at ~600 MiB/s on one core, slower than ``cp`` out of the page cache);
* S3 (a ``moto_server`` on 127.0.0.1 started here; at ``--s3-sizes-mib``, default 256, because moto
  is a pure-Python mock that moves tens of MiB/s): ``gitreg init --remote s3://… --endpoint-url``,
  ``gitreg register`` (uploads) vs md5 + boto3 ``upload_file``; remove ``.dvc/cache``;
  ``gitreg pull`` vs boto3 ``download_file`` (one GET) of the same object (floors run as subprocesses,
  interpreter start and boto3 import included, as gitreg's are).

Each command's peak RSS is read from ``os.wait4`` on that child (what ``/usr/bin/time -f %M``
reports). Throughput ratio = floor seconds / gitreg seconds (target ≥ 0.5).

Run:  .venv/bin/python benchmarks/bundle_io.py [--size-mib 1024] [--sizes-mib 256,1024]
          [--s3-sizes-mib 256,1024] [--repeat 1] [--profile] [--gitreg-src DIR]

Before/after: ``git archive REV src | tar -x -C /tmp/rev`` then ``--gitreg-src /tmp/rev/src``
runs that revision's gitreg (same venv) against the same floors.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    Timed,
    fmt_mib,
    fmt_ratio,
    fmt_s,
    isolated_env,
    machine_info,
    median,
    print_cprofile,
    print_table,
    run_timed,
    sizes_arg,
    venv_tool,
    write_results,
)
from gitreg.testing.s3 import MotoServer

CHUNK = 8 << 20
BUCKET = "gitreg-bench"
TARGET_THROUGHPUT_RATIO = 0.5
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

# Floors run as their own processes, like gitreg does: interpreter start + boto3 import included.
S3_UPLOAD_FLOOR = """
import hashlib, sys, boto3
path, endpoint, bucket, key = sys.argv[1:5]
h = hashlib.md5()
with open(path, "rb") as f:
    while chunk := f.read(8 << 20):
        h.update(chunk)
boto3.client("s3", endpoint_url=endpoint).upload_file(path, bucket, key)
print(h.hexdigest())
"""
# Two download floors. moto answers every ranged GET by materializing the whole object
# (moto/s3/responses.py _handle_range_header slices a full copy of the value), so any ranged
# reader — boto3's default download_file (8 MiB parts, 10 threads) and s3fs/DVC alike (50 MiB
# blocks) — is O(size²) against moto. "single" is one streamed GET: the strict floor.
S3_DOWNLOAD_FLOOR = """
import sys, boto3
from boto3.s3.transfer import TransferConfig
endpoint, bucket, key, dest, mode = sys.argv[1:6]
config = TransferConfig(multipart_threshold=1 << 40, use_threads=False) if mode == "single" else None
boto3.client("s3", endpoint_url=endpoint).download_file(bucket, key, dest, Config=config)
"""


# --gitreg-src DIR: run the gitreg package found in DIR (e.g. `git archive HEAD src | tar -x -C DIR`,
# then DIR/src) instead of the installed one, to measure a before/after pair in identical conditions.
GITREG_SRC: str | None = None
RUN_FROM_SRC = "import sys; sys.path.insert(0, sys.argv.pop(1)); from gitreg.cli import main; main()"


def gitreg_command() -> list[str]:
    if GITREG_SRC is None:
        return [venv_tool("gitreg")]
    return [sys.executable, "-c", RUN_FROM_SRC, GITREG_SRC]


def write_random(path: Path, mib: int) -> None:
    """``mib`` MiB of random bytes, written 8 MiB at a time (memory stays flat)."""
    with open(path, "wb") as f:
        left = mib << 20
        while left:
            n = min(CHUNK, left)
            f.write(os.urandom(n))
            left -= n


def make_bundle(work: Path, mib: int) -> Path:
    bundle = work / f"bundle-{mib}"
    bundle.mkdir()
    write_random(bundle / "policy.pt", mib)
    meta = {
        "algo": "PPO",
        "framework": "torch",
        "created_at": "2025-07-06T18:51:00Z",
        "metrics": {"mean_reward": 200.5},
        "hyperparameters": {"learning_rate": 0.0003},
    }
    (bundle / "metadata.json").write_text(json.dumps(meta, indent=2))
    return bundle


def rm(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# -- one comparison ------------------------------------------------------------------------------
@dataclass
class Pair:
    """Repeated timings of a gitreg command and its floor, at one size."""

    op: str
    mib: int
    gitreg_cmd: str
    floor_cmd: str
    gitreg: list[Timed] = field(default_factory=list)
    floor: list[Timed] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        g = median([t.seconds for t in self.gitreg])
        f = median([t.seconds for t in self.floor])
        return {
            "op": self.op,
            "size_mib": self.mib,
            "gitreg_command": self.gitreg_cmd,
            "floor_command": self.floor_cmd,
            "gitreg_s": g,
            "floor_s": f,
            "gitreg_runs_s": [round(t.seconds, 3) for t in self.gitreg],
            "floor_runs_s": [round(t.seconds, 3) for t in self.floor],
            "gitreg_mib_s": self.mib / g,
            "floor_mib_s": self.mib / f,
            "throughput_ratio": f / g,
            "gitreg_written_mib": round(median([t.written_bytes for t in self.gitreg]) / 2**20, 1),
            "floor_written_mib": round(median([t.written_bytes for t in self.floor]) / 2**20, 1),
            "gitreg_max_rss_kib": max(t.max_rss_kib for t in self.gitreg),
            "floor_max_rss_kib": max(t.max_rss_kib for t in self.floor),
        }


def _json_out(t: Timed, what: str) -> dict[str, Any]:
    return dict(json.loads(t.check(what).stdout))


def _md5_of(result: dict[str, Any], path: str = "policy.pt") -> str:
    return str(next(f["md5"] for f in result["files"] if f["path"] == path))


def bench_local(
    work: Path, env: dict[str, str], bundle: Path, mib: int, r: int, pairs: dict[str, Pair]
) -> None:
    gitreg = gitreg_command()
    repo = work / f"local-{mib}-{r}"
    repo.mkdir()
    init = _json_out(run_timed([*gitreg, "init", "--ci", "none", "--json"], cwd=repo, env=env), "gitreg init")
    remote = Path(init["remote_url"])
    version = f"v2025-07-06--18h{r:02d}"

    dest = work / "floor-register"
    dest.mkdir()
    floor = run_timed(
        ["sh", "-c", 'md5sum "$1" && cp "$1" "$2/"', "sh", str(bundle / "policy.pt"), str(dest)]
    )
    floor_md5 = floor.check("md5sum && cp").stdout.split()[0].decode()
    rm(dest)
    reg = run_timed(
        [*gitreg, "register", str(bundle), "--model", "policy", "--version", version, "--json"],
        cwd=repo,
        env=env,
    )
    md5 = _md5_of(_json_out(reg, "gitreg register"))
    if md5 != floor_md5:
        raise SystemExit(f"gitreg recorded md5 {md5}, md5sum says {floor_md5}")
    pairs["register"].gitreg.append(reg)
    pairs["register"].floor.append(floor)

    obj = remote / "files" / "md5" / md5[:2] / md5[2:]
    if not obj.is_file():
        raise SystemExit(f"the bytes are not in the DVC remote at {obj}")
    rm(repo / ".dvc" / "cache")
    dest = work / "floor-pull"
    dest.mkdir()
    floor = run_timed(["cp", str(obj), str(dest / "policy.pt")]).check("cp")
    rm(dest)
    dest.mkdir()
    hashed_floor = run_timed(
        ["sh", "-c", 'md5sum "$1" && cp "$1" "$2/policy.pt"', "sh", str(obj), str(dest)]
    ).check("md5sum && cp")
    rm(dest)
    out = work / "pulled"
    pull = run_timed([*gitreg, "pull", version, "--out", str(out), "--json"], cwd=repo, env=env)
    if _md5_of(_json_out(pull, "gitreg pull")) != md5 or (out / "policy.pt").stat().st_size != mib << 20:
        raise SystemExit("gitreg pull produced different bytes")
    pairs["pull-local"].gitreg.append(pull)
    pairs["pull-local"].floor.append(floor)
    pairs["pull-local-md5"].gitreg.append(pull)
    pairs["pull-local-md5"].floor.append(hashed_floor)
    for p in (out, repo, remote):
        rm(p)


def bench_s3(
    work: Path, env: dict[str, str], endpoint: str, bundle: Path, mib: int, r: int, pairs: dict[str, Pair]
) -> None:
    gitreg = gitreg_command()
    repo = work / f"s3-{mib}-{r}"
    repo.mkdir()
    prefix = f"run-{mib}-{r}"
    _json_out(
        run_timed(
            [
                *gitreg,
                "init",
                "--ci",
                "none",
                "--json",
                "--remote",
                f"s3://{BUCKET}/{prefix}",
                "--endpoint-url",
                endpoint,
            ],
            cwd=repo,
            env=env,
        ),
        "gitreg init (s3)",
    )
    version = f"v2025-07-06--19h{r:02d}"
    floor_key = f"floor/{prefix}/policy.pt"
    floor = run_timed(
        [sys.executable, "-c", S3_UPLOAD_FLOOR, str(bundle / "policy.pt"), endpoint, BUCKET, floor_key],
        env=env,
    ).check("boto3 upload_file")
    floor_md5 = floor.stdout.decode().strip()
    reg = run_timed(
        [*gitreg, "register", str(bundle), "--model", "policy", "--version", version, "--json"],
        cwd=repo,
        env=env,
    )
    md5 = _md5_of(_json_out(reg, "gitreg register (s3)"))
    if md5 != floor_md5:
        raise SystemExit(f"gitreg recorded md5 {md5}, hashlib says {floor_md5}")
    pairs["register-s3"].gitreg.append(reg)
    pairs["register-s3"].floor.append(floor)

    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint)
    key = f"{prefix}/files/md5/{md5[:2]}/{md5[2:]}"
    if s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] != mib << 20:
        raise SystemExit(f"s3://{BUCKET}/{key} does not hold the bundle's bytes")
    s3.delete_object(Bucket=BUCKET, Key=floor_key)
    rm(repo / ".dvc" / "cache")
    dest = work / "floor-s3-pull"
    floors = {}
    for mode in ("single", "default"):
        dest.mkdir()
        floors[mode] = run_timed(
            [sys.executable, "-c", S3_DOWNLOAD_FLOOR, endpoint, BUCKET, key, str(dest / "policy.pt"), mode],
            env=env,
        ).check(f"boto3 download_file ({mode})")
        rm(dest)
    out = work / "pulled-s3"
    pull = run_timed([*gitreg, "pull", version, "--out", str(out), "--json"], cwd=repo, env=env)
    if _md5_of(_json_out(pull, "gitreg pull (s3)")) != md5 or (out / "policy.pt").stat().st_size != mib << 20:
        raise SystemExit("gitreg pull (s3) produced different bytes")
    pairs["pull-s3"].gitreg.append(pull)
    pairs["pull-s3"].floor.append(floors["single"])
    pairs["pull-s3-ranged"].gitreg.append(pull)
    pairs["pull-s3-ranged"].floor.append(floors["default"])
    s3.delete_object(Bucket=BUCKET, Key=key)
    for p in (out, repo):
        rm(p)


# -- profiling -------------------------------------------------------------------------------------
def profile(work: Path, env: dict[str, str], bundle: Path, mib: int) -> dict[str, Any]:
    """register and pull (local remote, cache removed) under the phase timers, then under
    cProfile, each in a fresh registry."""
    gitreg = gitreg_command()
    child = str(Path(__file__).with_name("_profile_cli.py"))
    result: dict[str, Any] = {"size_mib": mib}
    for mode in ("phases", "cprofile"):
        repo = work / f"profile-{mode}"
        repo.mkdir()
        init = _json_out(run_timed([*gitreg, "init", "--ci", "none", "--json"], cwd=repo, env=env), "init")
        version = "v2025-07-06--20h00"
        t = run_timed(
            [
                sys.executable,
                child,
                "--mode",
                mode,
                "register",
                str(bundle),
                "--model",
                "policy",
                "--version",
                version,
            ],
            cwd=repo,
            env=env,
        ).check(f"profile register ({mode})")
        result[f"register_{mode}"] = json.loads(t.stderr.decode().strip().splitlines()[-1])
        rm(repo / ".dvc" / "cache")
        out = work / "profile-pulled"
        t = run_timed(
            [sys.executable, child, "--mode", mode, "pull", version, "--out", str(out)], cwd=repo, env=env
        ).check(f"profile pull ({mode})")
        result[f"pull_{mode}"] = json.loads(t.stderr.decode().strip().splitlines()[-1])
        for p in (out, repo, Path(init["remote_url"])):
            rm(p)
    return result


def print_profile(p: dict[str, Any]) -> None:
    for op in ("register", "pull"):
        ph = p[f"{op}_phases"]
        print_table(
            f"phases of `gitreg {op}` ({p['size_mib']} MiB, wall clock, inclusive)",
            ["phase", "calls", "seconds"],
            [[k, v["calls"], f"{v['seconds']:.3f}"] for k, v in ph.items()],
        )
        print_cprofile(f"`gitreg {op}` ({p['size_mib']} MiB)", p[f"{op}_cprofile"])


# -- main ------------------------------------------------------------------------------------------
OPS = {
    "register": ("gitreg register (local remote)", "md5sum policy.pt && cp policy.pt dest/"),
    "pull-local": ("gitreg pull (local remote, no cache)", "cp <remote object> dest/"),
    # pull must verify every md5; cp does not hash. This floor does what pull must do.
    "pull-local-md5": ("the same gitreg pull", "md5sum <remote object> && cp <remote object> dest/"),
    "register-s3": ("gitreg register (S3 remote: upload)", "python: md5 + boto3 upload_file"),
    "pull-s3": ("gitreg pull (S3 remote, no cache)", "python: boto3 download_file as one streamed GET"),
    "pull-s3-ranged": (
        "the same gitreg pull",
        "python: boto3 download_file with its defaults (8 MiB ranged parts, 10 threads)",
    ),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024, help="size of policy.pt in MiB (default 1024)")
    ap.add_argument("--sizes-mib", default=None, help="several sizes, e.g. 256,1024 (peak RSS vs size)")
    ap.add_argument("--repeat", type=int, default=1, help="repetitions per size; the median is reported")
    ap.add_argument(
        "--s3-sizes-mib",
        default="256",
        help="sizes at which the S3 (moto) part runs (default 256: moto, a pure-Python mock, moves "
        "10-30 MiB/s here, so 1 GiB through it takes minutes; pass 1024 for the full size)",
    )
    ap.add_argument("--no-s3", action="store_true", help="skip the moto S3 part")
    ap.add_argument("--profile", action="store_true", help="also profile register and pull (largest size)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (prints its path)")
    ap.add_argument(
        "--gitreg-src",
        default=None,
        help="run the gitreg package under this folder (a `src` of another revision) instead of "
        "the installed one; results go to bundle_io_..._src.json",
    )
    args = ap.parse_args()
    global GITREG_SRC
    GITREG_SRC = str(Path(args.gitreg_src).resolve()) if args.gitreg_src else None
    sizes = sizes_arg(args.sizes_mib) if args.sizes_mib else [args.size_mib]
    s3_sizes = [] if args.no_s3 else sizes_arg(args.s3_sizes_mib)
    if args.repeat < 1:
        raise SystemExit("--repeat must be positive")

    report: dict[str, Any] = {
        "benchmark": "bundle_io",
        "machine": machine_info(),
        "settings": {"sizes_mib": sizes, "s3_sizes_mib": s3_sizes, "repeat": args.repeat},
        "targets": {"throughput_ratio_min": TARGET_THROUGHPUT_RATIO, "peak_rss": "flat in bundle size"},
        "results": [],
    }
    with isolated_env("bundle", keep=args.keep) as (work, base_env):
        env = {**base_env, **S3_ENV}
        os.environ.update(S3_ENV)  # for this process's own boto3 checks
        with ExitStack() as stack:
            endpoint = stack.enter_context(MotoServer(log=work / "moto.log")).endpoint if s3_sizes else None
            if endpoint:
                import boto3

                boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
            for mib in sorted(set(sizes) | set(s3_sizes)):
                print(f"{mib} MiB: writing the bundle …", file=sys.stderr)
                bundle = make_bundle(work, mib)
                pairs = {op: Pair(op, mib, *OPS[op]) for op in OPS}
                for r in range(args.repeat):
                    if mib in sizes:
                        print(f"{mib} MiB: round {r + 1}/{args.repeat}: local remote …", file=sys.stderr)
                        bench_local(work, env, bundle, mib, r, pairs)
                    if endpoint and mib in s3_sizes:
                        print(f"{mib} MiB: round {r + 1}/{args.repeat}: S3 (moto) …", file=sys.stderr)
                        bench_s3(work, env, endpoint, bundle, mib, r, pairs)
                report["results"] += [p.as_json() for p in pairs.values() if p.gitreg]
                if args.profile and mib == max(sizes):
                    print(f"{mib} MiB: profiling register and pull …", file=sys.stderr)
                    report["profile"] = profile(work, env, bundle, mib)
                rm(bundle)

    rows = [
        [
            r["op"],
            r["size_mib"],
            fmt_s(r["gitreg_s"]),
            f"{r['gitreg_mib_s']:.0f}",
            fmt_s(r["floor_s"]),
            f"{r['floor_mib_s']:.0f}",
            fmt_ratio(r["throughput_ratio"]),
            fmt_mib(r["gitreg_max_rss_kib"]),
            fmt_mib(r["floor_max_rss_kib"]),
            f"{r['gitreg_written_mib']:.0f} / {r['floor_written_mib']:.0f}",
        ]
        for r in report["results"]
    ]
    print_table(
        f"bundle I/O: gitreg vs floor, median of {args.repeat} "
        f"(target: throughput ratio ≥ {TARGET_THROUGHPUT_RATIO:.0%} of floor; peak RSS flat in size)",
        [
            "op",
            "MiB",
            "gitreg s",
            "gitreg MiB/s",
            "floor s",
            "floor MiB/s",
            "ratio",
            "gitreg RSS",
            "floor RSS",
            "MiB written gitreg / floor",
        ],
        rows,
    )
    for op, (g, f) in OPS.items():
        print(f"  {op}: gitreg = {g}; floor = {f}")
    if "profile" in report:
        print_profile(report["profile"])
    # The default run and a --sizes-mib run do not overwrite each other's results.
    default = sizes == [1024] and s3_sizes == [256]
    name = "bundle_io" if default else f"bundle_io_{'-'.join(map(str, sorted(set(sizes))))}"
    report["settings"]["gitreg_src"] = GITREG_SRC
    write_results(name + ("_src" if GITREG_SRC else ""), report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
