"""S3 on 127.0.0.1: a private ``moto_server`` that can be stopped and started again on the same
port (an outage). boto3 is imported on use."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from gitreg.testing.net import LOOPBACK, free_port, wait_for_port
from gitreg.testing.server import start_process, stop_process


def moto_executable() -> str:
    """This environment's moto_server (next to the interpreter), else the one on PATH."""
    here = Path(sys.executable).parent / "moto_server"
    return str(here) if here.exists() else shutil.which("moto_server") or str(here)


class MotoServer:
    """``moto_server -H 127.0.0.1 -p PORT``, its output appended to ``log`` (or discarded)."""

    def __init__(self, port: int | None = None, log: Path | None = None) -> None:
        self.port = free_port() if port is None else port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint = f"http://{LOOPBACK}:{self.port}"

    def start(self, deadline_s: float = 60.0) -> MotoServer:
        log = self.log or Path("/dev/null")
        self.proc = start_process([moto_executable(), "-H", LOOPBACK, "-p", str(self.port)], log)
        try:
            wait_for_port(self.port, deadline_s, watch=[self])
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def describe(self) -> str:
        code = None if self.proc is None else self.proc.returncode
        return f"moto_server on {self.endpoint} exited ({code}); log: {self.log or '(discarded)'}"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def __enter__(self) -> MotoServer:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
