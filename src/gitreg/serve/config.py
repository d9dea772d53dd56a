"""What `gitreg serve` is told: the agent's, the HTTP app's and the process's settings, the
fallback thresholds and the request limits. Plain dataclasses, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MAX_WEBHOOK_BYTES = 1 << 20  # a webhook delivery larger than this is a 413
MAX_BODY_BYTES = 1 << 20  # default --max-body-bytes: a /predict body larger is a 413


@dataclass(frozen=True)
class Thresholds:
    """When a newly swapped-in version is replaced by the previous one."""

    max_error_rate: float = 0.05  # fraction of failed requests in the window
    max_p99_ms: float = 1000.0
    min_requests: int = 50  # judge a version only after this many requests
    window: int = 500  # the last N requests of a version


@dataclass
class AgentConfig:
    """The sync loop: which remote, branch and models to follow, and how to load them."""

    repo: str
    cache: Path
    branch: str = "main"
    models: list[str] = field(default_factory=list)  # empty: every model with a production stage
    poll: float = 30.0
    thresholds: Thresholds = field(default_factory=Thresholds)
    seed: int | None = None
    threads: int | None = None
    smoke_test: bool = True
    load_timeout: float = 120.0
    load_memory_mb: int = 8192
    max_backoff: float = 300.0
    allow_architectures: list[str] = field(default_factory=list)  # besides models.yaml's policy
    cache_max_bytes: int | None = None  # bundles/ stays under this (unserved bundles evicted first)
    require_signed: bool = False  # refuse tags whose signature does not verify, whatever the policy
    hook_interval: float = 2.0  # at most one webhook-triggered sync per this many seconds
    git_token_env: str | None = None  # the env var whose token git answers the remote with
    stage: str = "production"  # the stage served (another, e.g. staging: no canary is followed)


@dataclass
class ServeOptions:
    """The HTTP app: authentication and per-request limits."""

    token: str | None = None
    webhook_secret: str | None = None
    max_batch: int = 1024
    max_body_bytes: int = MAX_BODY_BYTES  # 413 past this, from Content-Length or while streaming
    stale_after: float | None = None  # seconds without a successful sync before /health degrades


@dataclass
class ServerConfig:
    """One `gitreg serve` process: the agent, the app and the listening socket."""

    agent: AgentConfig
    options: ServeOptions = field(default_factory=ServeOptions)
    host: str = "127.0.0.1"
    port: int = 8000
    graceful_seconds: float = 30.0
    log_level: str = "info"
    json_logs: bool = False
    # connection limits (uvicorn's settings, plus connections.guarded_protocol)
    max_connections: int = 1000  # past it a new connection closes the oldest idle one
    limit_concurrency: int = 1100  # connections + requests in progress past which uvicorn answers 503
    timeout_keep_alive: float = 5.0  # an idle keep-alive connection is closed after this
    header_timeout: float = 10.0  # a request head must arrive complete within this of connecting
    body_timeout: float = 30.0  # and then its body within this of the head
    max_header_bytes: int = 16 * 1024  # a larger request head is a 400 (h11_max_incomplete_event_size)
    backlog: int = 2048  # connections the kernel queues before accept
