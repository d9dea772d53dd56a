"""Serving: `gitreg serve`, and the /health reader behind `gitreg status --server`."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gitreg.cli._context import AllowArchitectureOpt, AllowedSignersOpt, architectures, trust_signers
from gitreg.errors import GitregError
from gitreg.fs import user_cache_dir

if TYPE_CHECKING:
    from gitreg.serve.health import HealthReport

MAX_HEALTH_BYTES = 16 << 20  # a /health of thousands of models is a few MB


def fetch_health(url: str) -> HealthReport:
    """A running agent's ``/health``, parsed as the agent's own :class:`HealthReport`."""
    import urllib.error
    import urllib.request

    from pydantic import ValidationError

    from gitreg.serve.health import HealthReport

    target = url.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(target, timeout=10) as resp:
            body = resp.read(MAX_HEALTH_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise GitregError(f"cannot read {target}: {reason}", "is `gitreg serve` running there?") from None
    if len(body) > MAX_HEALTH_BYTES:
        raise GitregError(f"{target} answered more than {MAX_HEALTH_BYTES} bytes", "is it a `gitreg serve`?")
    try:
        return HealthReport.model_validate_json(body)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the body"
        raise GitregError(
            f"{target} is not a gitreg /health answer ({where}: {first['msg']})",
            "is it a `gitreg serve`, of a compatible version?",
        ) from None


def serve(
    repo: Annotated[
        str, typer.Option(help="The registry's Git remote: URL or path (a bare mirror is kept).")
    ],
    branch: Annotated[str, typer.Option(help="The branch whose models.yaml is followed.")] = "main",
    stage: Annotated[
        str,
        typer.Option(
            help="The stage served: production (with its canary), or another stage of models.yaml, "
            "e.g. staging (no canary), so a staging fleet and a production fleet share one registry."
        ),
    ] = "production",
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Follow this model (repeatable; default: all).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    poll: Annotated[float, typer.Option(help="Seconds between fetches of the Git remote.")] = 30.0,
    cache: Annotated[
        Path | None,
        typer.Option(help="Folder for the mirror and verified bundles (default: ~/.cache/gitreg/serve)."),
    ] = None,
    cache_max_bytes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Keep the bundle cache under N bytes: evict unserved bundles (least recently used first); "
            "refuse a pull that still does not fit (the served version keeps serving; /health says why).",
        ),
    ] = None,
    webhook_secret_env: Annotated[
        str | None, typer.Option(help="Env var holding the webhook secret (GitHub HMAC or GitLab token).")
    ] = None,
    token_env: Annotated[
        str | None, typer.Option(help="Env var holding a bearer token that /predict requires.")
    ] = None,
    git_token_env: Annotated[
        str | None,
        typer.Option(
            help="Env var holding the token git logs in to an HTTPS --repo with (user x-access-token, "
            "or the URL's user); given to git through a credential helper, never argv or a file."
        ),
    ] = None,
    max_error_rate: Annotated[
        float, typer.Option(help="Fall back when a new version's error rate exceeds this.")
    ] = 0.05,
    max_p99_ms: Annotated[
        float, typer.Option(help="Fall back when a new version's p99 latency exceeds this.")
    ] = 1000.0,
    min_requests: Annotated[int, typer.Option(help="Requests before a new version is judged.")] = 50,
    window: Annotated[int, typer.Option(help="Sliding window (requests) for error rate and latency.")] = 500,
    max_batch: Annotated[int, typer.Option(help="Largest batch /predict accepts.")] = 1024,
    max_body_bytes: Annotated[
        int,
        typer.Option(
            min=1,
            help="Largest /predict body: a larger one is a 413, from Content-Length or while it streams.",
        ),
    ] = 1 << 20,
    max_connections: Annotated[
        int, typer.Option(min=1, help="Open connections; past it a new one closes the oldest idle one.")
    ] = 1000,
    limit_concurrency: Annotated[
        int, typer.Option(min=1, help="Connections + requests in progress past which requests get a 503.")
    ] = 1100,
    timeout_keep_alive: Annotated[
        float, typer.Option(min=0.1, help="Seconds an idle keep-alive connection stays open.")
    ] = 5.0,
    header_timeout: Annotated[
        float,
        typer.Option(
            min=0.1, help="Seconds a connection has to send a complete request head, else it is closed."
        ),
    ] = 10.0,
    body_timeout: Annotated[
        float,
        typer.Option(
            min=0.1,
            help="Seconds a request body has to arrive complete after its head, else it is "
            "answered 408 and closed (a 1 MiB body at the default needs 35 KB/s).",
        ),
    ] = 30.0,
    max_header_bytes: Annotated[
        int, typer.Option(min=1024, help="Largest request head (request line + headers): larger is a 400.")
    ] = 16 * 1024,
    backlog: Annotated[int, typer.Option(min=1, help="Connections the kernel queues before accept.")] = 2048,
    seed: Annotated[int | None, typer.Option(help="Seed for canary routing (reproducible splits).")] = None,
    threads: Annotated[int | None, typer.Option(help="torch intra-op threads (default: torch's).")] = None,
    allow_architecture: AllowArchitectureOpt = None,
    graceful: Annotated[
        float, typer.Option(help="Seconds to let in-flight requests finish on SIGTERM.")
    ] = 30.0,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    require_signed: Annotated[
        bool,
        typer.Option(
            help="Refuse versions whose tag signature does not verify (the last good one keeps serving)."
        ),
    ] = False,
    allowed_signers: AllowedSignersOpt = None,
    json: Annotated[bool, typer.Option("--json", help="Log JSON lines (for log collectors).")] = False,
) -> None:
    """Serve the production (and canary) version of each model; follow models.yaml and hot-swap."""
    from gitreg.sandbox import require_torch

    require_torch("gitreg serve")  # before binding the port: a replica without torch never serves
    trust_signers(allowed_signers)
    from gitreg.serve import AgentConfig, ServeOptions, ServerConfig, run_server
    from gitreg.serve.slots import Thresholds

    def secret(name: str | None, what: str) -> str | None:
        if name is None:
            return None
        value = os.environ.get(name)
        if not value:
            raise GitregError(f"{what}: environment variable {name} is empty or unset", f"export {name}=…")
        return value

    from gitreg.gitrepo.credentials import has_password, split_url

    repo_url = repo if "://" in repo or ":" in repo.split("/")[0] else str(Path(repo).resolve())
    secret(git_token_env, "--git-token-env")
    if git_token_env and has_password(repo_url):
        raise GitregError(
            "--repo has a password in it and --git-token-env names a token",
            f"give the plain URL and keep the token in ${git_token_env}",
        )
    # the cache folder is keyed by the URL without its password: a new token keeps the mirror
    clean_url = split_url(repo_url)[0]
    cache_dir = cache or user_cache_dir() / "serve"
    agent = AgentConfig(
        repo=repo_url,
        cache=cache_dir.resolve() / hashlib.sha1(clean_url.encode(), usedforsecurity=False).hexdigest()[:12],
        branch=branch,
        stage=stage,
        models=list(model or []),
        poll=poll,
        thresholds=Thresholds(max_error_rate, max_p99_ms, min_requests, window),
        seed=seed,
        threads=threads,
        allow_architectures=architectures(allow_architecture),
        cache_max_bytes=cache_max_bytes,
        require_signed=require_signed,
        git_token_env=git_token_env,
    )
    # DVC keeps per-repository state in its "site cache", /var/tmp/dvc by default (shared by
    # every user, and read-only under a read-only root): the agent's own cache folder instead
    os.environ.setdefault("DVC_SITE_CACHE_DIR", str(agent.cache / "dvc-site"))
    options = ServeOptions(
        token=secret(token_env, "--token-env"),
        webhook_secret=secret(webhook_secret_env, "--webhook-secret-env"),
        max_batch=max_batch,
        max_body_bytes=max_body_bytes,
        stale_after=max(poll * 4, 120.0),
    )
    if stage in ("canary", "archived") or not re.fullmatch(r"[a-z][a-z0-9_-]{0,39}", stage):
        raise GitregError(
            f"--stage {stage[:40]!r}: not a stage to serve",
            "serve production (and its canary) or another stage of models.yaml, e.g. --stage staging",
        )
    if log_level not in ("debug", "info", "warning", "error"):
        raise GitregError(f"unknown --log-level {log_level!r}", "use debug, info, warning or error")
    run_server(
        ServerConfig(
            agent=agent,
            options=options,
            host=host,
            port=port,
            graceful_seconds=graceful,
            log_level=log_level,
            json_logs=json,
            max_connections=max_connections,
            limit_concurrency=limit_concurrency,
            timeout_keep_alive=timeout_keep_alive,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            max_header_bytes=max_header_bytes,
            backlog=backlog,
        )
    )
