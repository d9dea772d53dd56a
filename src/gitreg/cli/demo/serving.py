"""The demo's second half: promote by pull request, serve with the real `gitreg serve`, hot-swap
under load, roll back. The server, the polling and the load come from gitreg.testing, the same
harness the tests and benchmarks use."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gitreg.cli import render
from gitreg.cli.demo.narration import Narrator, git
from gitreg.errors import GitregError
from gitreg.serve.health import HealthReport
from gitreg.testing.load import Load
from gitreg.testing.net import WaitTimeout, free_port, http_json, wait_until
from gitreg.testing.server import ServeProcess, start_serve

OBS = [0.5, -0.2, 0.1, 0.9]
CLIENTS = 4
MAX_LOAD_SECONDS = 300.0  # the swap takes seconds; the load stops on its own if something hangs


def _wait_for(what: str, check: Callable[[], Any], deadline_s: float, server: ServeProcess) -> None:
    try:
        wait_until(check, deadline_s, what=what, every=0.2, watch=[server])
    except WaitTimeout as e:
        raise GitregError(
            f"the demo server did not {what} within {deadline_s:.0f} s", f"see {server.log}"
        ) from e


def lifecycle_and_serving(n: Narrator, root: Path, reg: Any, versions: list[str]) -> None:
    first, second = versions
    repo = reg.root

    n.heading(f"Promote {first} to production by pull request")
    n.say(
        "The stage lives in models.yaml; gitreg commits the change on a new branch and pushes it. With gh or "
        "glab on PATH it opens the pull request; here the remote is a folder, so a reviewer merges by hand."
    )
    n.cmd(f"gitreg promote {first} production")
    change = reg.promote(first, "production")
    render.change_result(change, False)
    n.cmd(f"git merge --no-ff {change.branch} -m 'Merge pull request #1 from {change.branch}' && git push")
    git(repo, "merge", "-q", "--no-ff", change.branch, "-m", f"Merge pull request #1 from {change.branch}")
    git(repo, "push", "-q", "origin", "main")

    n.heading("Serve it: the deploy agent follows models.yaml on the remote")
    port = free_port()
    n.cmd(f"gitreg serve --repo ../remote.git --port {port} --poll 1")
    server = start_serve(
        root / "remote.git", "--poll", "1", "--seed", "7", "--log-level", "warning",
        port=port, cache=root / "serve-cache", log=root / "serve.log",
        command=[sys.executable, "-m", "gitreg"], ready=False,
    )  # fmt: skip
    url = server.url
    try:
        _wait_for("become ready", lambda: http_json(url, "/ready", timeout=2)[0] == 200, 180, server)
        n.cmd(f"curl -s {url}/predict -d '{{\"inputs\": [{OBS}]}}'")
        status, body = http_json(url, "/predict", {"inputs": [OBS]}, timeout=10)
        n.line(json.dumps(body))
        if status != 200 or body["version"] != first:
            raise GitregError(f"expected {first} to answer, got {status} {body}", "see serve.log")

        n.heading(f"Hot-swap to {second} while clients keep calling")
        n.say(
            "Four clients call /predict in a loop; the new version is pulled, verified, loaded and warmed up "
            "beside the old one, then swapped in by reference: requests in flight finish on the old one."
        )
        with Load(url, clients=CLIENTS, inputs=[OBS], max_seconds=MAX_LOAD_SECONDS, timeout=10) as load:
            n.cmd(f"gitreg deploy {second} --direct --push")
            render.change_result(reg.deploy(second, direct=True, push=True), False)
            _wait_for(f"serve {second}", lambda: load.by_version().get(second, 0) > 20, 180, server)
        counts = ", ".join(f"{v}: {c}" for v, c in sorted(load.by_version().items()))
        failed = load.failed()
        n.line(f"requests answered — {counts}; failed: {failed}")
        if failed:
            raise GitregError(f"{failed} requests failed during the swap", "see serve.log")

        n.heading("Roll back: git revert of the commit that moved production")
        n.cmd("gitreg rollback policy --direct --push")
        render.change_result(reg.rollback("policy", direct=True, push=True), False)
        _wait_for(
            f"serve {first} again",
            lambda: (
                (http_json(url, "/predict", {"inputs": [OBS]}, timeout=10)[1] or {}).get("version") == first
            ),
            120,
            server,
        )
        n.line(f"{first} answers again (it was still loaded: the swap back is instant)")
        n.cmd(f"gitreg status --server {url}")
        render.server_status(HealthReport.model_validate(http_json(url, "/health", timeout=10)[1]), False)
        n.cmd("gitreg history policy")
        render.history(reg.history("policy"), False)
    finally:
        server.stop(graceful=30)
