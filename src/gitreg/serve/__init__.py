"""`gitreg serve`: the deploy agent (agent.py) + its HTTP server (app.py) in one process."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from gitreg.serve.agent import Agent, AgentConfig
from gitreg.serve.app import ServeOptions, create_app

__all__ = ["Agent", "AgentConfig", "ServeOptions", "ServerConfig", "create_app", "run_server"]


@dataclass
class ServerConfig:
    agent: AgentConfig
    options: ServeOptions = field(default_factory=ServeOptions)
    host: str = "127.0.0.1"
    port: int = 8000
    graceful_seconds: float = 30.0
    log_level: str = "info"
    json_logs: bool = False


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        import json

        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data)


def run_server(config: ServerConfig) -> None:
    """Run until SIGTERM/SIGINT; in-flight requests finish before the process exits."""
    import signal

    import uvicorn

    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
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
        )
    )
    # Once shut down gracefully, uvicorn re-raises the SIGTERM it caught, under the handler it
    # found: the default one would end the process with -15. A graceful stop is a clean exit (0).
    signal.signal(signal.SIGTERM, lambda *_: None)
    server.run()
