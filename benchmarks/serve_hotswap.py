"""Hot swaps of `gitreg serve` under load: failed requests and latency, steady vs during swaps.

It builds a registry (bare Git remote, folder DVC remote) with ``--versions`` small TorchScript
MLPs, starts a real ``gitreg serve --poll 0.5`` subprocess, and lets ``--clients`` threads (one
persistent HTTP/1.1 connection each) POST /predict back to back. After a warm-up it measures a
steady window of ``--steady`` seconds, then performs ``--swaps`` production promotions (a direct
commit to models.yaml + push, cycling through the versions), each waited for until every client
has been answered by the new version. A request counts as "during a swap" when it overlaps
[start of the promote+push, first answer from the new version + 1 s].

Targets: 0 failed requests; p99 during swaps ≤ 2× steady p99.

Run:  .venv/bin/python benchmarks/serve_hotswap.py [--clients 8] [--swaps 20] [--steady 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from _common import fmt_ratio, isolated_env, machine_info, median, print_table, write_results
from _serve_common import (
    Load,
    Sample,
    build_registry,
    export_env,
    latency_summary,
    load_note,
    loadavg,
    start_serve,
    wait_until,
)

TARGET_P99_RATIO = 2.0
AFTER_S = 1.0  # a swap's window lasts until 1 s after the first answer from the new version


def first_answer(load: Load, version: str, since: float) -> float | None:
    """The earliest time (end of a request started after ``since``) a client got ``version``."""
    best: float | None = None
    for per in load.samples:
        for s in reversed(per[-2000:]):
            if s.start < since:
                break
            if s.version == version:
                end = s.start + s.seconds
                best = end if best is None or end < best else best
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8, help="concurrent client threads (default 8)")
    ap.add_argument("--swaps", type=int, default=20, help="production changes to make (default 20)")
    ap.add_argument("--steady", type=float, default=10.0, help="seconds of steady load measured first")
    ap.add_argument("--versions", type=int, default=3, help="registered versions, cycled through (≥ 2)")
    ap.add_argument("--poll", type=float, default=0.5, help="the server's --poll (default 0.5)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (prints its path)")
    args = ap.parse_args()
    if args.versions < 2 or args.swaps < 1 or args.clients < 1:
        raise SystemExit("need --versions ≥ 2, --swaps ≥ 1, --clients ≥ 1")

    report: dict[str, Any] = {
        "benchmark": "serve_hotswap",
        "machine": machine_info(),
        "settings": vars(args) | {"window_after_first_answer_s": AFTER_S},
        "targets": {"failed_requests": 0, "p99_during_over_steady_max": TARGET_P99_RATIO},
    }
    loads = [loadavg()]
    with isolated_env("serve-hotswap", keep=args.keep) as (work, env):
        export_env(env)
        print(f"registering {args.versions} versions …", file=sys.stderr)
        reg = build_registry(work, args.versions)
        server = start_serve(work, reg.remote, "--poll", str(args.poll))
        try:
            with Load(server.url, clients=args.clients) as load:
                wait_until(lambda: load.count() >= 100, "warm-up answers", 60, server)
                time.sleep(1.0)
                s0 = time.monotonic()
                time.sleep(args.steady)
                s1 = time.monotonic()
                loads.append(loadavg())
                windows: list[tuple[float, float]] = []
                swaps: list[dict[str, Any]] = []
                for i in range(args.swaps):
                    new = reg.versions[(i + 1) % len(reg.versions)]
                    t0 = time.monotonic()
                    reg.promote(new)
                    t_pushed = time.monotonic()
                    first = wait_until(
                        lambda new=new, t0=t0: first_answer(load, new, t0), f"{new} answering", 120, server
                    )
                    wait_until(
                        lambda new=new: load.last_versions() == {new}, f"every client on {new}", 120, server
                    )
                    t_all = time.monotonic()
                    windows.append((t0, first + AFTER_S))
                    swaps.append(
                        {
                            "to": new,
                            "promote_push_s": round(t_pushed - t0, 3),
                            "push_to_first_answer_s": round(first - t0, 3),
                            "push_to_all_clients_s": round(t_all - t0, 3),
                        }
                    )
                    print(
                        f"  swap {i + 1}/{args.swaps} -> {new}: first answer after {first - t0:.2f}s",
                        file=sys.stderr,
                    )
                    # leave the window before the next swap (so windows do not merge)
                    time.sleep(max(0.0, first + AFTER_S - time.monotonic()) + 0.2)
                end = time.monotonic()
            loads.append(loadavg())
        finally:
            server.kill()
        samples = load.all()

    def overlaps(s: Sample, w: tuple[float, float]) -> bool:
        return s.start < w[1] and s.start + s.seconds > w[0]

    steady = [s for s in samples if s0 <= s.start and s.start + s.seconds <= s1]
    during = [s for s in samples if any(overlaps(s, w) for w in windows)]
    between = [s for s in samples if s.start >= s1 and not any(overlaps(s, w) for w in windows)]
    during_s = sum(b - a for a, b in windows)
    st = latency_summary(steady, s1 - s0)
    du = latency_summary(during, during_s)
    bw = latency_summary(between, (end - s1) - during_s)
    ratio = du["p99_ms"] / st["p99_ms"] if du["p99_ms"] and st["p99_ms"] else None
    failed_total = sum(1 for s in samples if s.status != 200)
    report["results"] = {
        "steady": st,
        "during_swaps": du,
        "between_swaps": bw,
        "p99_during_over_steady": None if ratio is None else round(ratio, 3),
        "failed_requests_total": failed_total,
        "requests_total": len(samples),
        "failed_statuses": sorted({s.status for s in samples if s.status != 200}),
        "swaps": swaps,
        "median_push_to_first_answer_s": round(median([s["push_to_first_answer_s"] for s in swaps]), 3),
        "median_promote_push_s": round(median([s["promote_push_s"] for s in swaps]), 3),
        "target_met": failed_total == 0 and ratio is not None and ratio <= TARGET_P99_RATIO,
    }
    report["loadavg_during"] = loads
    note = load_note(max(loads, key=lambda x: x[0]))
    report["note"] = note

    rows = [
        [name, r["requests"], r["failed"], r["rps"], r["p50_ms"], r["p99_ms"], r["max_ms"], r["seconds"]]
        for name, r in (("steady", st), ("during swaps", du), ("between swaps", bw))
    ]
    print_table(
        f"gitreg serve hot swap: {args.clients} clients, {len(swaps)} swaps (--poll {args.poll:g}), "
        f"p99 during/steady = {fmt_ratio(ratio)} (target ≤ {TARGET_P99_RATIO:g}×), "
        f"failed {failed_total}/{len(samples)} (target 0). {note}; loadavg {loads}",
        ["window", "requests", "failed", "req/s", "p50 ms", "p99 ms", "max ms", "seconds"],
        rows,
    )
    print(
        f"median promote+push {report['results']['median_promote_push_s']}s, "
        f"push→first new answer {report['results']['median_push_to_first_answer_s']}s",
    )
    write_results("serve_hotswap", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
