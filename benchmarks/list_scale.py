"""How `gitreg list` scales with the number of versions, against the floor of its git call.

For each N it builds, fast, a registry with N versions: one real ``gitreg init`` + ``gitreg
register``, then N-1 more annotated version tags on that commit whose messages are real gitreg
tag messages (``format_tag_message`` of a ``TagSummary``), written in one ``git fast-import``,
plus validation notes on about half of them (one fast-import commit on ``refs/notes/gitreg``).
It builds a GTO-shaped twin with N ``policy@v0.0.<i>`` registration tags, then times, as
subprocesses (median of ``--repeat`` runs, interleaved):

* floor = ``python -c pass`` + ``git for-each-ref --format=%(refname)%00%(contents) refs/tags``,
  measured separately and summed;
* ``gitreg list --json --limit 0`` (the installed console script), checked to return N rows:
  - cold: its first run, with no list cache (``.git/gitreg/list-cache``): it reads and parses
    every tag and note and writes the cache (timed once; it is the first-listing cost);
  - warm: the median of ``--repeat`` runs with the cache in place (what every later listing
    costs, as long as the tags' objects are those cached: new tags are read incrementally).
    The gitreg/floor target (≤ 3× at 10k) applies to the warm median;
  - uncached: the median with ``GITREG_LIST_CACHE=0`` (cache neither read nor written);
* ``gto show`` on the GTO twin (with a timeout).

Run:  .venv/bin/python benchmarks/list_scale.py [--sizes 1000,10000] [--repeat 5] [--profile]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import (
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
from gitreg import __version__ as gitreg_version
from gitreg.metadata import (
    CheckResult,
    TagSummary,
    ValidationRecord,
    format_tag_message,
    parse_tag_message,
)
from gitreg.versions import VersionName, format_version

BASE = datetime(2020, 1, 1, tzinfo=UTC)
TAGGER = "Bench User <bench@example.com>"
NOTES_REF = "refs/notes/gitreg"
TARGET_FLOOR_RATIO = 3.0
TARGET_GTO_RATIO = 20.0
SLOW_S = 30.0  # a gto run slower than this is timed once (unless --gto-repeat is given)


# -- building the repositories -------------------------------------------------------------------
def git(args: list[str], cwd: Path, env: dict[str, str], stdin: bytes | None = None) -> str:
    return run_timed(["git", *args], cwd=cwd, env=env, stdin=stdin).check(f"git {args[0]}").stdout.decode()


def _data(payload: bytes) -> bytes:
    return b"data %d\n" % len(payload) + payload + b"\n"


def version_name(i: int) -> str:
    return format_version(VersionName(BASE + timedelta(minutes=i)))


def write_bundle(folder: Path, seed: int) -> None:
    folder.mkdir(parents=True)
    (folder / "policy.pt").write_bytes(random.Random(seed).randbytes(64 << 10))
    meta = {
        "algo": "PPO",
        "framework": "torch",
        "created_at": BASE.isoformat(),
        "metrics": {"mean_reward": 200.5, "success_rate": 0.93, "episode_length": 412.0},
        "hyperparameters": {"learning_rate": 0.0003, "gamma": 0.99, "n_steps": 2048, "net": [64, 64]},
        "input_shape": [8],
        "env_id": "LunarLander-v3",
        "data_version": "data-v1",
        "code_commit": "0123456789abcdef0123456789abcdef01234567",
        "description": "benchmark bundle",
    }
    (folder / "metadata.json").write_text(json.dumps(meta, indent=2))


def summary_for(base: TagSummary, i: int, rng: random.Random) -> TagSummary:
    when = BASE + timedelta(minutes=i)
    return base.model_copy(
        update={
            "version": version_name(i),
            "created_at": when - timedelta(minutes=30),
            "registered_at": when,
            "metrics": {
                "mean_reward": round(rng.uniform(-200, 300), 3),
                "success_rate": round(rng.random(), 4),
                "episode_length": float(rng.randint(50, 1000)),
            },
            "parameters": {**base.parameters, "learning_rate": rng.choice([1e-4, 3e-4, 1e-3]), "seed": i},
            "parent": version_name(i - 1) if i > 0 else None,
        }
    )


def build_registry(work: Path, env: dict[str, str], n: int) -> tuple[Path, dict[str, int]]:
    """A registry repo with n versions (1 registered for real + n-1 fast-imported) and notes
    on every other one. Returns (repo, expected status counts)."""
    gitreg = venv_tool("gitreg")
    repo = work / f"registry-{n}"
    repo.mkdir()
    bundle = work / f"bundle-{n}"
    write_bundle(bundle, n)
    run_timed([gitreg, "init", "--ci", "none"], cwd=repo, env=env).check("gitreg init")
    first = version_name(0)
    run_timed(
        [gitreg, "register", str(bundle), "--model", "policy", "--version", first, "--json"],
        cwd=repo,
        env=env,
    ).check("gitreg register")
    commit = git(["rev-parse", f"{first}^{{commit}}"], repo, env).strip()
    real_message = git(["for-each-ref", "--format=%(contents)", f"refs/tags/{first}"], repo, env)
    base, _ = parse_tag_message(real_message)
    if base is None:
        raise SystemExit(f"could not parse the tag message gitreg wrote:\n{real_message}")

    rng = random.Random(n)
    stream = bytearray()
    for i in range(1, n):
        msg = format_tag_message(summary_for(base, i, rng)).encode()
        when = int((BASE + timedelta(minutes=i)).timestamp())
        stream += f"tag {version_name(i)}\nfrom {commit}\ntagger {TAGGER} {when} +0000\n".encode()
        stream += _data(msg)
    stream += b"done\n"
    git(["fast-import", "--quiet", "--done"], repo, env, stdin=bytes(stream))

    # Validation notes on every other version (the tag object is what gitreg annotates).
    objects = dict(
        line.split(" ", 1)
        for line in git(["for-each-ref", "--format=%(refname:strip=2) %(objectname)", "refs/tags"], repo, env)
        .strip()
        .splitlines()
    )
    counts = {"registered": 0, "validated": 0, "failed": 0}
    notes = bytearray()
    for i in range(n):
        name = version_name(i)
        if i % 2:
            counts["registered"] += 1
            continue
        passed = i % 10 != 0
        counts["validated" if passed else "failed"] += 1
        record = ValidationRecord(
            version=name,
            passed=passed,
            checked_at=BASE + timedelta(minutes=i, seconds=40),
            checked_by="CI <ci@example.com>",
            gitreg_version=gitreg_version,
            torch_version="2.10.0",
            checks=[
                CheckResult(name="digests", ok=True, detail="2 files match their pointers"),
                CheckResult(name="metadata", ok=True, detail="PPO / torch"),
                CheckResult(name="load", ok=passed, detail="state dict" if passed else "forward pass failed"),
            ],
            files=base.files,
            load_seconds=0.012,
            forward_seconds=0.001,
            output_shape=[1, 4],
            error=None if passed else "forward pass failed",
        )
        sha = objects[name]
        notes += f"M 100644 inline {sha[:2]}/{sha[2:]}\n".encode() + _data(record.to_note().encode())
    header = f"commit {NOTES_REF}\ncommitter {TAGGER} {int(BASE.timestamp())} +0000\n".encode()
    header += _data(b"Notes added by the list_scale benchmark")
    git(["fast-import", "--quiet", "--done"], repo, env, stdin=header + bytes(notes) + b"done\n")
    git(["pack-refs", "--all"], repo, env)  # as a clone has them
    return repo, counts


def build_gto_twin(work: Path, env: dict[str, str], n: int) -> Path:
    """A repo with one commit and n GTO registration tags policy@v0.0.<i> (annotated, GTO's
    own message), as `gto register` would leave them."""
    repo = work / f"gto-{n}"
    repo.mkdir()
    git(["init", "-q"], repo, env)
    when0 = int(BASE.timestamp())
    stream = bytearray(b"commit refs/heads/main\nmark :1\n")
    stream += f"committer {TAGGER} {when0} +0000\n".encode() + _data(b"model")
    stream += b"M 100644 inline models/policy/README.md\n" + _data(b"policy model\n")
    for i in range(n):
        version = f"v0.0.{i + 1}"
        when = when0 + 60 * (i + 1)
        stream += f"tag policy@{version}\nfrom :1\ntagger {TAGGER} {when} +0000\n".encode()
        stream += _data(f"Registering artifact policy version {version}".encode())
    stream += b"done\n"
    git(["fast-import", "--quiet", "--done"], repo, env, stdin=bytes(stream))
    git(["pack-refs", "--all"], repo, env)
    git(["checkout", "-q", "main"], repo, env)
    return repo


# -- measuring -------------------------------------------------------------------------------------
@dataclass
class Series:
    """Repeated timings of one command at one N."""

    seconds: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    timed_out: bool = False
    single: bool = False  # timed once only (too slow to repeat)

    def add(self, seconds: float, rss: int) -> None:
        self.seconds.append(seconds)
        self.rss_kib.append(rss)

    @property
    def median(self) -> float | None:
        return median(self.seconds) if self.seconds and not self.timed_out else None

    def as_json(self) -> dict[str, Any]:
        return {
            "median_s": self.median,
            "runs_s": [round(s, 4) for s in self.seconds],
            "max_rss_kib": max(self.rss_kib) if self.rss_kib else None,
            "timed_out": self.timed_out,
            "runs": len(self.seconds),
        }


def check_list_output(stdout: bytes, n: int, counts: dict[str, int]) -> None:
    rows = json.loads(stdout)
    if len(rows) != n:
        raise SystemExit(f"gitreg list returned {len(rows)} rows, expected {n}")
    got = {s: 0 for s in counts}
    for r in rows:
        got[r["status"]] += 1
    if got != counts:
        raise SystemExit(f"gitreg list statuses {got}, expected {counts}")
    names = [r["version"] for r in rows]
    if names != sorted(names, reverse=True):
        raise SystemExit("gitreg list is not newest first")


def measure(
    n: int,
    repo: Path,
    gto_repo: Path | None,
    counts: dict[str, int],
    env: dict[str, str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    gitreg = venv_tool("gitreg")
    gto = venv_tool("gto")
    listing = [gitreg, "list", "--json", "--limit", "0"]
    cmds: dict[str, tuple[list[str], Path]] = {
        "floor_python": ([sys.executable, "-c", "pass"], repo),
        "floor_git": (["git", "for-each-ref", "--format=%(refname)%00%(contents)", "refs/tags"], repo),
        "gitreg_list": (listing, repo),
        "gitreg_list_uncached": (listing, repo),
    }
    if gto_repo is not None:
        cmds["gto_show"] = ([gto, *args.gto_command.split()], gto_repo)
    series = {k: Series() for k in cmds}
    envs = {k: env for k in cmds}
    envs["gitreg_list_uncached"] = {**env, "GITREG_LIST_CACHE": "0"}

    # The cold listing: no cache yet (the build never lists), so it reads every tag and note.
    cache = repo / ".git" / "gitreg" / "list-cache"
    cache.unlink(missing_ok=True)
    cold = run_timed(listing, cwd=repo, env=env).check("gitreg list (cold)")
    check_list_output(cold.stdout, n, counts)
    if not cache.is_file():
        raise SystemExit("the cold gitreg list wrote no list cache")
    size = cache.stat().st_size
    print(f"  N={n}: cold gitreg_list {cold.seconds:.3f}s (list cache: {size} bytes)", file=sys.stderr)

    # One warm-up of each (page cache, .pyc), then --repeat interleaved rounds.
    for name, (cmd, cwd) in cmds.items():
        timeout = args.gto_timeout if name == "gto_show" else None
        t = run_timed(cmd, cwd=cwd, env=envs[name], timeout=timeout)
        if t.timed_out:
            series[name].timed_out = True
            print(
                f"  N={n}: {name} warm-up exceeded {args.gto_timeout}s: reported as >timeout", file=sys.stderr
            )
            continue
        t.check(name)
        if name.startswith("gitreg_list") and t.stdout != cold.stdout:
            raise SystemExit(f"{name} printed other bytes than the cold listing")
        if name == "floor_git" and t.stdout.count(b"refs/tags/") != n:
            raise SystemExit(f"for-each-ref saw {t.stdout.count(b'refs/tags/')} tags, expected {n}")
        if name == "gto_show" and b"policy" not in t.stdout:
            raise SystemExit(f"gto show did not list the policy artifact:\n{t.stdout[:500]!r}")
        if name == "gto_show" and t.seconds > SLOW_S and args.gto_repeat_given is None:
            # Too slow to repeat: the warm-up (page cache already warm from the build) is the run.
            series[name].add(t.seconds, t.max_rss_kib)
            series[name].single = True
        print(f"  N={n}: warm-up {name} {t.seconds:.3f}s", file=sys.stderr)
    for r in range(args.repeat):
        for name, (cmd, cwd) in cmds.items():
            s = series[name]
            if s.timed_out or s.single or (name == "gto_show" and r >= args.gto_repeat):
                continue
            timeout = args.gto_timeout if name == "gto_show" else None
            t = run_timed(cmd, cwd=cwd, env=envs[name], timeout=timeout)
            if t.timed_out:
                s.timed_out = True
                continue
            t.check(name)
            s.add(t.seconds, t.max_rss_kib)
        print(f"  N={n}: round {r + 1}/{args.repeat} done", file=sys.stderr)

    floor_py, floor_git = series["floor_python"].median, series["floor_git"].median
    floor = (floor_py or 0.0) + (floor_git or 0.0)
    gitreg_s = series["gitreg_list"].median
    gto_s = series["gto_show"].median if "gto_show" in series else None
    result: dict[str, Any] = {
        "n": n,
        "floor_s": floor,
        "gitreg_cold_s": cold.seconds,
        "gitreg_cold_max_rss_kib": cold.max_rss_kib,
        "list_cache_bytes": cache.stat().st_size,
        "commands": {k: v.as_json() for k, v in series.items()},
        "gitreg_over_floor": (gitreg_s / floor) if gitreg_s and floor else None,  # warm median
        "gitreg_cold_over_floor": (cold.seconds / floor) if floor else None,
        "gto_over_gitreg": (gto_s / gitreg_s) if gto_s and gitreg_s else None,
        "gto_status": "not run"
        if "gto_show" not in series
        else (f">{args.gto_timeout:g}s timeout" if series["gto_show"].timed_out else "ok"),
    }
    if series.get("gto_show") and series["gto_show"].timed_out and gitreg_s:
        result["gto_over_gitreg_at_least"] = args.gto_timeout / gitreg_s
    return result


# -- profiling ---------------------------------------------------------------------------------------
def profile(repo: Path, env: dict[str, str], n: int) -> dict[str, Any]:
    """Where the time of `gitreg list --json --limit 0` goes: import costs (-X importtime), the
    phases of the command (wall-clock timers around gitreg's functions) and a cProfile top list."""
    argv = ["gitreg", "list", "--json", "--limit", "0"]
    code = f"import sys; sys.argv = {argv!r}; from gitreg.cli import main; main()"
    t = run_timed([sys.executable, "-X", "importtime", "-c", code], cwd=repo, env=env).check("importtime")
    imports = parse_importtime(t.stderr.decode())
    child = str(Path(__file__).with_name("_profile_cli.py"))
    t = run_timed([sys.executable, child, "--mode", "phases", *argv[1:]], cwd=repo, env=env).check("phases")
    phases = json.loads(t.stderr.decode().strip().splitlines()[-1])
    t = run_timed([sys.executable, child, "--mode", "cprofile", *argv[1:]], cwd=repo, env=env).check(
        "cprofile"
    )
    cprof = json.loads(t.stderr.decode().strip().splitlines()[-1])
    return {"n": n, "imports": imports, "phases": phases, "cprofile": cprof}


def parse_importtime(text: str) -> dict[str, Any]:
    """Sum -X importtime by top-level package: cumulative time of the outermost imports, and
    self time of every module grouped by its top-level package."""
    outer: dict[str, int] = {}
    self_by_pkg: dict[str, int] = {}
    total = 0
    for line in text.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, raw = line[len("import time:") :].split("|", 2)
        name = raw.strip()
        pkg = name.split(".")[0]
        self_by_pkg[pkg] = self_by_pkg.get(pkg, 0) + int(self_us)
        total += int(self_us)
        if len(raw) - len(raw.lstrip()) <= 1:  # outermost import (nested ones are indented further)
            outer[name] = outer.get(name, 0) + int(cum_us)
    top = sorted(self_by_pkg.items(), key=lambda kv: -kv[1])
    return {
        "total_import_s": total / 1e6,
        "self_by_package_s": {k: v / 1e6 for k, v in top[:20]},
        "outermost_imports_s": {k: v / 1e6 for k, v in sorted(outer.items(), key=lambda kv: -kv[1])[:15]},
    }


# -- main ------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000", help="numbers of versions (default: 1000,10000)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per command; the median is reported")
    ap.add_argument("--gto-sizes", default=None, help="the N at which to run gto (default: all --sizes)")
    ap.add_argument("--gto-timeout", type=float, default=300.0, help="seconds before a gto run is killed")
    ap.add_argument(
        "--gto-repeat",
        type=int,
        default=None,
        help=f"timed gto runs (default: --repeat, but once when a run takes over {SLOW_S:g}s)",
    )
    ap.add_argument("--gto-command", default="show", help="gto arguments to time (default: 'show')")
    ap.add_argument("--profile", action="store_true", help="also profile gitreg list at the largest N")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (prints its path)")
    args = ap.parse_args()
    sizes = sizes_arg(args.sizes)
    gto_sizes = set(sizes_arg(args.gto_sizes)) if args.gto_sizes else set(sizes)
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    args.gto_repeat_given = args.gto_repeat
    args.gto_repeat = args.repeat if args.gto_repeat is None else args.gto_repeat

    report: dict[str, Any] = {
        "benchmark": "list_scale",
        "machine": machine_info(),
        "settings": {
            "sizes": sizes,
            "gto_sizes": sorted(gto_sizes),
            "repeat": args.repeat,
            "gto_repeat": args.gto_repeat,
            "gto_timeout_s": args.gto_timeout,
            "gto_command": args.gto_command,
        },
        "targets": {"gitreg_over_floor_max": TARGET_FLOOR_RATIO, "gto_over_gitreg_min": TARGET_GTO_RATIO},
        "results": [],
    }
    with isolated_env("list", keep=args.keep) as (work, env):
        last: tuple[Path, int] | None = None
        for n in sizes:
            print(f"N={n}: building the registry and the GTO twin …", file=sys.stderr)
            repo, counts = build_registry(work, env, n)
            gto_repo = build_gto_twin(work, env, n) if n in gto_sizes else None
            report["results"].append(measure(n, repo, gto_repo, counts, env, args))
            last = (repo, n)
        if args.profile and last is not None:
            print(f"profiling gitreg list at N={last[1]} …", file=sys.stderr)
            report["profile"] = profile(last[0], env, last[1])

    rows = []
    for r in report["results"]:
        c = r["commands"]
        gto = c.get("gto_show")
        gto_cell = (
            "not run"
            if gto is None
            else (f">{args.gto_timeout:g}" if gto["timed_out"] else fmt_s(gto["median_s"]))
        )
        if gto and not gto["timed_out"] and gto["runs"] < args.repeat:
            gto_cell += f" ({gto['runs']} run{'s' if gto['runs'] > 1 else ''})"
        gto_ratio = r["gto_over_gitreg"]
        ratio_cell = (
            fmt_ratio(gto_ratio)
            if gto_ratio
            else (f"≥{r['gto_over_gitreg_at_least']:.0f}×" if "gto_over_gitreg_at_least" in r else "—")
        )
        rows.append(
            [
                r["n"],
                fmt_s(c["floor_python"]["median_s"]),
                fmt_s(c["floor_git"]["median_s"]),
                fmt_s(r["floor_s"]),
                fmt_s(r["gitreg_cold_s"]),
                fmt_s(c["gitreg_list"]["median_s"]),
                fmt_s(c["gitreg_list_uncached"]["median_s"]),
                gto_cell,
                fmt_ratio(r["gitreg_cold_over_floor"]),
                fmt_ratio(r["gitreg_over_floor"]),
                ratio_cell,
                fmt_mib(c["gitreg_list"]["max_rss_kib"]),
                fmt_mib(gto["max_rss_kib"]) if gto else "—",
            ]
        )
    print_table(
        f"gitreg list --json --limit 0 vs floor and gto ({args.gto_command}); cold = first run (no "
        f"list cache), warm = median of {args.repeat} with the cache, uncached = median with "
        f"GITREG_LIST_CACHE=0 (targets, on the warm median: gitreg/floor ≤ {TARGET_FLOOR_RATIO:g}× "
        f"at 10k, gto/gitreg ≥ {TARGET_GTO_RATIO:g}×)",
        [
            "N",
            "python -c pass",
            "for-each-ref",
            "floor",
            "gitreg cold",
            "gitreg warm",
            "gitreg uncached",
            "gto",
            "cold/floor",
            "warm/floor",
            "gto/warm",
            "gitreg RSS",
            "gto RSS",
        ],
        rows,
    )
    if "profile" in report:
        print_profile(report["profile"])
    write_results("list_scale", report)
    return 0


def print_profile(p: dict[str, Any]) -> None:
    imp = p["imports"]
    print_table(
        f"imports of `gitreg list` (-X importtime, N={p['n']}): total {imp['total_import_s']:.3f}s, "
        "self time by top-level package",
        ["package", "seconds"],
        [[k, f"{v:.3f}"] for k, v in imp["self_by_package_s"].items()],
    )
    ph = p["phases"]
    print_table(
        f"phases of `gitreg list` (wall clock, inclusive, N={p['n']})",
        ["phase", "calls", "seconds"],
        [[k, v["calls"], f"{v['seconds']:.3f}"] for k, v in ph.items()],
    )
    print_cprofile(f"`gitreg list --json --limit 0` (N={p['n']})", p["cprofile"])


if __name__ == "__main__":
    sys.exit(main())
