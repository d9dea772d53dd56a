"""How fast `gitreg serve` follows a production change: seconds from the start of the
``git push`` of a models.yaml change to the first /predict answer naming the new version.

It registers 1 + 2 × ``--repeat`` small TorchScript MLPs (so every change is to a version the
server has never loaded: the reaction includes its pull from the DVC remote, verification and
sandboxed load), then, against a real ``gitreg serve`` subprocess:

* webhook: ``--poll 30 --webhook-secret-env``; after each push, one GitHub-signed POST /hooks/git;
* polling: ``--poll <--poll-interval>`` (default 2 s) and nothing else.

Each change is a direct commit made locally (``promote --direct``, no push), then timed from
``git push origin HEAD:refs/heads/main``; one client polls /predict every 10 ms on a persistent
connection. The median of ``--repeat`` changes per mode is reported, next to the push time and,
for polling, the poll interval (its expected share is half of it).

Run:  .venv/bin/python benchmarks/serve_reaction.py [--repeat 3] [--poll-interval 2]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import subprocess
import sys
import time
from typing import Any

from _common import isolated_env, machine_info, median, print_table, write_results
from _serve_common import (
    ROW,
    Proc,
    Reg,
    build_registry,
    export_env,
    load_note,
    loadavg,
    request,
    start_serve,
)

SECRET_ENV = "GITREG_BENCH_HOOK_SECRET"


def answer_version(conn: http.client.HTTPConnection) -> str:
    conn.request(
        "POST", "/predict", body=json.dumps({"inputs": ROW}), headers={"Content-Type": "application/json"}
    )
    r = conn.getresponse()
    data = r.read()
    return str(json.loads(data)["version"]) if r.status == 200 else ""


def react(
    reg: Reg, server: Proc, version: str, secret: str | None, deadline_s: float = 180.0
) -> dict[str, Any]:
    reg.promote(version, push=False)  # the commit, made before the clock starts
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        if answer_version(conn) == version:
            raise SystemExit(f"{version} already served before the push")
        t0 = time.monotonic()
        subprocess.run(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], cwd=reg.repo, check=True)
        pushed = time.monotonic()
        hook_s = None
        if secret is not None:
            head = subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=reg.repo, check=True, capture_output=True, text=True
            ).stdout.strip()
            body = json.dumps({"ref": "refs/heads/main", "after": head}).encode()
            sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            code, text = request(server.url, "POST", "/hooks/git", body, {"X-Hub-Signature-256": sig})
            if code != 202:
                raise SystemExit(f"webhook answered {code}: {text[:300]!r}")
            hook_s = time.monotonic() - pushed
        while True:
            if not server.alive():
                raise SystemExit(f"server exited:\n{server.tail()}")
            if answer_version(conn) == version:
                break
            if time.monotonic() - t0 > deadline_s:
                raise SystemExit(f"{version} not served {deadline_s:g}s after the push:\n{server.tail()}")
            time.sleep(0.01)
        done = time.monotonic()
    finally:
        conn.close()
    return {
        "version": version,
        "push_s": round(pushed - t0, 3),
        "webhook_post_s": None if hook_s is None else round(hook_s, 3),
        "push_to_answer_s": round(done - t0, 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="changes per mode; the median is reported")
    ap.add_argument("--poll-interval", type=float, default=2.0, help="--poll of the polling-only server")
    ap.add_argument("--webhook-poll", type=float, default=30.0, help="--poll of the webhook server")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (prints its path)")
    args = ap.parse_args()
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")

    report: dict[str, Any] = {
        "benchmark": "serve_reaction",
        "machine": machine_info(),
        "settings": vars(args),
    }
    loads = [loadavg()]
    modes: dict[str, list[dict[str, Any]]] = {}
    secret = "bench-" + hashlib.sha256(str(time.time()).encode()).hexdigest()[:16]
    with isolated_env("serve-reaction", keep=args.keep) as (work, env):
        export_env(env)
        print(f"registering {1 + 2 * args.repeat} versions …", file=sys.stderr)
        reg = build_registry(work, 1 + 2 * args.repeat)
        fresh = iter(reg.versions[1:])
        plans = [
            ("webhook", ("--poll", f"{args.webhook_poll:g}", "--webhook-secret-env", SECRET_ENV), secret),
            ("polling", ("--poll", f"{args.poll_interval:g}"), None),
        ]
        for name, flags, hook in plans:
            server = start_serve(work, reg.remote, *flags, name=name, env={SECRET_ENV: secret})
            try:
                time.sleep(1.0)
                runs = []
                for i in range(args.repeat):
                    runs.append(react(reg, server, next(fresh), hook))
                    print(f"  {name} {i + 1}/{args.repeat}: {runs[-1]['push_to_answer_s']}s", file=sys.stderr)
                    loads.append(loadavg())
                    time.sleep(1.0)
                modes[name] = runs
            finally:
                server.kill()

    note = load_note(max(loads, key=lambda x: x[0]))
    results: dict[str, Any] = {}
    rows = []
    for name, runs in modes.items():
        poll = args.webhook_poll if name == "webhook" else args.poll_interval
        r = {
            "poll_interval_s": poll,
            "median_push_to_answer_s": round(median([x["push_to_answer_s"] for x in runs]), 3),
            "min_s": min(x["push_to_answer_s"] for x in runs),
            "max_s": max(x["push_to_answer_s"] for x in runs),
            "median_push_s": round(median([x["push_s"] for x in runs]), 3),
            "runs": runs,
        }
        results[name] = r
        rows.append(
            [
                name + (" (signed POST /hooks/git)" if name == "webhook" else ""),
                f"{poll:g}",
                len(runs),
                f"{r['median_push_s']:.3f}",
                f"{r['median_push_to_answer_s']:.3f}",
                f"{r['min_s']:.3f}",
                f"{r['max_s']:.3f}",
                " ".join(f"{x['push_to_answer_s']:.2f}" for x in runs),
            ]
        )
    report["results"] = results
    report["loadavg_during"] = loads
    report["note"] = note
    print_table(
        "seconds from `git push` of a production change to the first /predict answer naming the new "
        f"(never loaded) version; median of {args.repeat}. {note}; loadavg {loads}",
        ["mode", "--poll s", "runs", "git push s", "push→answer s", "min", "max", "all"],
        rows,
    )
    write_results("serve_reaction", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
