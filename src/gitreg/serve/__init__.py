"""`gitreg serve`: the deploy agent + its HTTP server in one process.

config (what it is told), agent (the sync loop), cache (verified bundles on disk), slots (what
is served, fallbacks), runtime (torch), app (FastAPI routes), health (the /health model),
metrics (Prometheus)."""

from __future__ import annotations

import logging

from gitreg.serve.agent import Agent
from gitreg.serve.app import create_app
from gitreg.serve.config import AgentConfig, ServeOptions, ServerConfig, Thresholds
from gitreg.serve.health import HealthReport

__all__ = [
    "Agent",
    "AgentConfig",
    "HealthReport",
    "ServeOptions",
    "ServerConfig",
    "Thresholds",
    "create_app",
    "run_server",
]


LOG_FIELDS = ("event", "model", "version", "role")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the event, model, version
    and role a record names."""

    def format(self, record: logging.LogRecord) -> str:
        import json

        data: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in LOG_FIELDS:  # given as logging's extra= by the agent and the app
            value = getattr(record, key, None)
            if value is not None:
                data[key] = value
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data)


def run_server(config: ServerConfig) -> None:
    """Run until SIGTERM/SIGINT; in-flight requests finish before the process exits."""
    import signal

    import uvicorn

    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonLogFormatter()
        if config.json_logs
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=config.log_level.upper(), handlers=[handler], force=True)
    logging.captureWarnings(True)  # library warnings are log records too (one JSON line each)
    from gitreg.serve.connections import guarded_protocol

    agent = Agent(config.agent)
    app = create_app(agent, config.options)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level=config.log_level,
            timeout_graceful_shutdown=int(config.graceful_seconds),
            access_log=False,
            log_config=None,  # uvicorn logs through the handler above (plain or JSON)
            http=guarded_protocol(config.header_timeout, config.max_connections, config.body_timeout),
            limit_concurrency=config.limit_concurrency,
            timeout_keep_alive=max(1, round(config.timeout_keep_alive)),
            h11_max_incomplete_event_size=config.max_header_bytes,
            backlog=config.backlog,
        )
    )
    # Once shut down gracefully, uvicorn re-raises the SIGTERM it caught, under the handler it
    # found: the default one would end the process with -15. A graceful stop is a clean exit (0).
    signal.signal(signal.SIGTERM, lambda *_: None)
    server.run()
