"""Loopback networking for harness processes: free ports, polling with a deadline (never a bare
sleep), and a one-shot HTTP request with the standard library."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
LOOPBACK = "127.0.0.1"
# What a poll shrugs off by default: a server not listening yet, a half-written answer.
TRANSIENT: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException, ValueError, KeyError)


class Watched(Protocol):
    """A process that ``wait_until`` gives up on as soon as it has exited (see server.ServeProcess)."""

    def alive(self) -> bool: ...

    def describe(self) -> str: ...


class WaitTimeout(TimeoutError):
    """``wait_until`` ran out of time, or a watched process exited while it waited."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__(message)
        self.what = what


def free_port() -> int:
    """A TCP port nothing listens on right now, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], T],
    deadline: float,
    *,
    what: str = "the condition",
    every: float = 0.05,
    watch: Sequence[Watched] = (),
    errors: tuple[type[BaseException], ...] = TRANSIENT,
) -> T:
    """Call ``predicate`` every ``every`` s until it returns something truthy, and return that.

    ``deadline`` is in seconds from now. An exception of a type in ``errors`` counts as "not yet"
    (and is named in the timeout message). Raises ``WaitTimeout`` after the deadline, or at once
    when a process in ``watch`` has exited, with what each watched process logged."""
    end = time.monotonic() + deadline
    last: BaseException | None = None
    while True:
        for p in watch:
            if not p.alive():
                raise WaitTimeout(what, f"{p.describe()}\nwhile waiting for {what}")
        try:
            value = predicate()
        except errors as e:
            value, last = None, e  # type: ignore[assignment]
        if value:
            return value
        if time.monotonic() >= end:
            logs = "\n".join(p.describe() for p in watch)
            raise WaitTimeout(
                what, f"timed out after {deadline:g} s waiting for {what} (last: {last!r})\n{logs}"
            )
        time.sleep(every)


def port_open(port: int, host: str = LOOPBACK) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket() as s:
        return s.connect_ex((host, port)) == 0


def wait_for_port(port: int, deadline_s: float = 30.0, *, watch: Sequence[Watched] = ()) -> None:
    """Wait until something listens on 127.0.0.1:``port``."""
    wait_until(lambda: port_open(port), deadline_s, what=f"a listener on {LOOPBACK}:{port}", watch=watch)


def http_request(
    url: str,
    method: str = "GET",
    path: str = "/",
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, bytes]:
    """One request to ``url`` (``http://host:port``); ``body`` bytes as they are, anything else as
    JSON. Returns (status, body bytes); connection errors raise ``OSError``."""
    host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
    conn = http.client.HTTPConnection(host, int(port or 80), timeout=timeout)
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def http_json(url: str, path: str, body: Any = None, timeout: float = 30) -> tuple[int, Any]:
    """GET (or POST ``body`` as JSON) and decode the answer; (0, None) when nothing answers."""
    try:
        status, data = http_request(url, "GET" if body is None else "POST", path, body, timeout=timeout)
    except (OSError, http.client.HTTPException):
        return 0, None
    try:
        return status, json.loads(data or b"null")
    except ValueError:
        return status, None
