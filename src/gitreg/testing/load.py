"""A bounded load generator: ``clients`` threads, each with one persistent HTTP/1.1 connection,
POSTing ``{"inputs": ...}`` back to back to a server on 127.0.0.1, until stopped, until
``max_requests`` requests in all, or until ``max_seconds`` — whichever comes first. Every
request is recorded; a refused or broken connection is a failed request (status -1) and the
connection is reopened."""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gitreg.testing.bundles import ROW

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class Sample:
    start: float  # time.monotonic() when the request was sent
    seconds: float  # latency
    status: int  # HTTP status, -1 for a connection error
    version: str  # the answering version; "" unless 200
    body: Any  # the decoded JSON answer, else its text (or the error)


class Load:
    """Use as a context manager: the threads start on enter and are joined on exit. ``pause``
    spaces each client's requests; ``timeout`` bounds each request."""

    def __init__(
        self,
        url: str,
        *,
        clients: int = 4,
        path: str = "/predict",
        inputs: Any = ROW,
        max_requests: int = 1_000_000,
        max_seconds: float = 1800.0,
        timeout: float = 60.0,
        pause: float = 0.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS or parts.port is None:
            raise ValueError(f"the load generator only targets http://127.0.0.1:PORT, not {url!r}")
        self.url, self.host, self.port = url, parts.hostname, parts.port
        self.clients, self.path, self.timeout, self.pause = clients, path, timeout, pause
        self.body = json.dumps({"inputs": inputs}).encode()
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.samples: list[list[Sample]] = [[] for _ in range(clients)]
        self._sent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Load:
        self._end = time.monotonic() + self.max_seconds
        for per in self.samples:
            t = threading.Thread(target=self._run, args=(per,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)

    def done(self) -> bool:
        """Whether every client has stopped (told to, or a bound was reached)."""
        return all(not t.is_alive() for t in self._threads)

    def _take(self) -> bool:
        with self._lock:
            if self._stop.is_set() or self._sent >= self.max_requests or time.monotonic() >= self._end:
                return False
            self._sent += 1
            return True

    def _run(self, out: list[Sample]) -> None:
        headers = {"Content-Type": "application/json"}
        conn: http.client.HTTPConnection | None = None
        while self._take():
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            t0 = time.monotonic()
            try:
                conn.request("POST", self.path, body=self.body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                elapsed = time.monotonic() - t0
                body: Any = json.loads(data) if r.status == 200 else data.decode(errors="replace")
                version = body["version"] if r.status == 200 else ""
                out.append(Sample(t0, elapsed, r.status, version, body))
            except Exception as e:  # a refused or broken connection is a failed request too
                out.append(Sample(t0, time.monotonic() - t0, -1, "", repr(e)))
                conn.close()
                conn = None
            if self.pause:  # pacing between a client's requests (leaves the server some CPU)
                self._stop.wait(self.pause)
        if conn is not None:
            conn.close()

    # -- what was answered ------------------------------------------------------------------------
    def _flat(self) -> list[Sample]:
        return [s for per in self.samples for s in list(per)]

    def all(self) -> list[Sample]:
        """Every request so far, client by client."""
        return self._flat()

    def answers(self) -> list[tuple[int, str, Any]]:
        """Every request as (status, version, body)."""
        return [(s.status, s.version, s.body) for s in self._flat()]

    def count(self) -> int:
        return sum(len(per) for per in self.samples)

    def failed(self) -> int:
        return sum(1 for s in self._flat() if s.status != 200)

    def seen(self, version: str, after: int = 0) -> int:
        """How many answers named ``version`` (counting only those after the first ``after``)."""
        return sum(1 for s in self._flat()[after:] if s.version == version)

    def by_version(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self._flat():
            if s.status == 200:
                counts[s.version] = counts.get(s.version, 0) + 1
        return counts

    def last_versions(self) -> set[str]:
        """The version each client heard last."""
        return {per[-1].version for per in self.samples if per}
