"""The overhead of `gitreg serve` on /predict against a bare FastAPI app serving the same model.

One TorchScript MLP (4 -> 16 -> 2) is registered and promoted, then served on loopback by
(a) a real ``gitreg serve`` subprocess and (b) a bare FastAPI app written here into the temp
folder (uvicorn, ``POST /predict`` -> ``torch.jit.load``'ed module under ``inference_mode``,
the same JSON shape back), loading the very bundle file gitreg pulled. Both run at the same
time (the idle one costs next to nothing) and get the same load: ``--clients`` threads with
persistent connections for ``--seconds`` each, interleaved ``--rounds`` times (a, b, a, b, …).

Target: gitreg serve's throughput ≥ 80 % of the bare app's. Each phase also reports the
server's own CPU time per answered request (from /proc), which a busy machine disturbs less.

Run:  .venv/bin/python benchmarks/serve_overhead.py [--clients 4] [--seconds 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from _common import isolated_env, machine_info, print_table, write_results
from _serve_common import (
    ROW,
    Load,
    build_registry,
    export_env,
    free_port,
    latency_summary,
    load_note,
    loadavg,
    request,
    start_process,
    start_serve,
    wait_ready,
    wait_until,
)

TARGET_RATIO = 0.8

BARE_APP = '''"""A bare FastAPI app: the floor gitreg serve is compared with."""
import os
from typing import Any

import torch
from fastapi import FastAPI
from pydantic import BaseModel

MODULE = torch.jit.load(os.environ["BENCH_MODEL"], map_location="cpu")
MODULE.eval()
VERSION = os.environ["BENCH_VERSION"]
app = FastAPI()


class PredictRequest(BaseModel):
    inputs: list[Any]


class PredictResponse(BaseModel):
    outputs: list[Any]
    model: str
    version: str


@app.post("/predict", response_model=PredictResponse)
def predict(body: PredictRequest) -> PredictResponse:
    x = torch.tensor(body.inputs, dtype=torch.float32)
    with torch.inference_mode():
        y = MODULE(x)
    return PredictResponse(outputs=y.tolist(), model="policy", version=VERSION)


@app.get("/ready")
def ready() -> dict[str, bool]:
    return {"ready": True}
'''


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process (all its threads) so far; None off Linux.

    The load generator shares the machine with the servers, so req/s moves with whatever else
    runs; the server's own CPU per request is the steadier measure of its overhead."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=4, help="concurrent client threads (default 4)")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds per measured phase (default 10)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds of (gitreg, bare) (default 2)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (prints its path)")
    args = ap.parse_args()

    report: dict[str, Any] = {
        "benchmark": "serve_overhead",
        "machine": machine_info(),
        "settings": vars(args),
        "targets": {"gitreg_over_bare_rps_min": TARGET_RATIO},
    }
    loads = [loadavg()]
    phases: list[dict[str, Any]] = []
    with isolated_env("serve-overhead", keep=args.keep) as (work, env):
        export_env(env)
        reg = build_registry(work, 1)
        version = reg.versions[0]
        gitreg = start_serve(work, reg.remote, "--poll", "30")
        bare = None
        try:
            pulled = sorted((work / "cache-a").rglob("policy.pt"))
            if not pulled:
                raise SystemExit(f"no policy.pt under {work / 'cache-a'}")
            model = pulled[0]
            app_file = work / "bare_app.py"
            app_file.write_text(BARE_APP)
            port = free_port()
            cmd = [
                sys.executable,
                "-m",
                "uvicorn",
                "bare_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ]
            bare = start_process(
                cmd, work / "bare.log", env={"BENCH_MODEL": str(model), "BENCH_VERSION": version}, cwd=work
            )
            wait_ready(bare)
            servers = {"gitreg serve": gitreg, "bare FastAPI": bare}
            answers = {}
            for name, s in servers.items():  # same answer from both (and warm both)
                for _ in range(50):
                    code, body = request(s.url, "POST", "/predict", {"inputs": ROW})
                    if code != 200:
                        raise SystemExit(f"{name}: /predict answered {code}: {body[:300]!r}")
                answers[name] = body
            a, b = (json.loads(x) for x in answers.values())
            if (a["outputs"], a["version"]) != (b["outputs"], b["version"]):
                raise SystemExit(f"the two servers disagree: {a} vs {b}")
            for r in range(args.rounds):
                for name, s in servers.items():
                    with Load(s.url, clients=args.clients) as load:
                        wait_until(lambda load=load: load.count() >= 20, "first answers", 30, s)
                        cpu0, t0 = cpu_seconds(s.proc.pid), time.monotonic()
                        time.sleep(args.seconds)
                        cpu1, t1 = cpu_seconds(s.proc.pid), time.monotonic()
                    window = [x for x in load.all() if t0 <= x.start and x.start + x.seconds <= t1]
                    phase = {"server": name, "round": r + 1, **latency_summary(window, t1 - t0)}
                    ok = phase["requests"] - phase["failed"]
                    cpu = None if cpu0 is None or cpu1 is None or not ok else (cpu1 - cpu0) / ok
                    phase["server_cpu_ms_per_request"] = None if cpu is None else round(cpu * 1000, 3)
                    phases.append(phase)
                    loads.append(loadavg())
                    print(f"  round {r + 1} {name}: {phases[-1]['rps']} req/s", file=sys.stderr)
        finally:
            gitreg.kill()
            if bare is not None:
                bare.kill()

    summary: dict[str, Any] = {}
    for name in ("gitreg serve", "bare FastAPI"):
        mine = [p for p in phases if p["server"] == name]
        requests = sum(p["requests"] for p in mine)
        ok = sum(p["requests"] - p["failed"] for p in mine)
        secs = sum(p["seconds"] for p in mine)
        summary[name] = {
            "requests": requests,
            "failed": sum(p["failed"] for p in mine),
            "rps": round(ok / secs, 1),
            "p50_ms_median_of_rounds": sorted(p["p50_ms"] for p in mine)[len(mine) // 2],
            "p99_ms_worst_round": max(p["p99_ms"] for p in mine),
            "server_cpu_ms_per_request": _mean([p["server_cpu_ms_per_request"] for p in mine]),
        }
    ratio = summary["gitreg serve"]["rps"] / summary["bare FastAPI"]["rps"]
    cpu = [summary[n]["server_cpu_ms_per_request"] for n in ("gitreg serve", "bare FastAPI")]
    note = load_note(max(loads, key=lambda x: x[0]))
    report["results"] = {
        "phases": phases,
        "summary": summary,
        "gitreg_over_bare_rps": round(ratio, 3),
        "gitreg_over_bare_server_cpu_per_request": None if None in cpu else round(cpu[0] / cpu[1], 3),
        "target_met": ratio >= TARGET_RATIO,
    }
    report["loadavg_during"] = loads
    report["note"] = note

    rows = [
        [
            p["server"],
            p["round"],
            p["requests"],
            p["failed"],
            p["rps"],
            p["p50_ms"],
            p["p99_ms"],
            p["server_cpu_ms_per_request"],
            p["seconds"],
        ]
        for p in phases
    ]
    for name, s in summary.items():
        rows.append([f"{name} (all)", "—", s["requests"], s["failed"], s["rps"], s["p50_ms_median_of_rounds"],
                     s["p99_ms_worst_round"], s["server_cpu_ms_per_request"], "—"])  # fmt: skip
    cpu_note = "" if None in cpu else f", server CPU per request gitreg/bare = {cpu[0] / cpu[1]:.2f}"
    print_table(
        f"/predict, {args.clients} clients × {args.seconds:g}s × {args.rounds} rounds interleaved: "
        f"gitreg/bare throughput = {ratio:.2f} (target ≥ {TARGET_RATIO:g}){cpu_note}. "
        f"{note}; loadavg {loads}",
        ["server", "round", "requests", "failed", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "seconds"],
        rows,
    )
    write_results("serve_overhead", report)
    return 0


def _mean(xs: list[float | None]) -> float | None:
    return None if not xs or None in xs else round(sum(x for x in xs if x is not None) / len(xs), 3)


if __name__ == "__main__":
    sys.exit(main())
