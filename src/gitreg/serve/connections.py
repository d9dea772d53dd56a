"""Connection limits uvicorn does not have: uvicorn closes a keep-alive connection that stays
idle *after* a response, but never one that opens and sends nothing, nor one that trickles its
request head byte by byte, and its ``limit_concurrency`` counts idle sockets too (so 500 idle
sockets would turn every real request into a 503).

``guarded_protocol`` wraps uvicorn's own HTTP protocol class:
- a connection must send a complete request head within ``header_timeout`` seconds of opening
  (or of its previous response), else it is closed;
- once a head has arrived, its body must arrive complete within ``body_timeout`` seconds, else
  it is answered 408 and the connection is closed (a body trickled in byte by byte holds a
  socket and a request slot no longer than that; time the server itself stops reading, under
  back-pressure, is not held against the client);
- when ``max_connections`` are open, a new connection closes the oldest idle one (no request in
  progress) to make room; if none is idle, uvicorn's ``limit_concurrency`` answers 503."""

from __future__ import annotations

import asyncio
from typing import Any


def guarded_protocol(
    header_timeout: float, max_connections: int | None, body_timeout: float
) -> type[asyncio.Protocol]:
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    base: Any = AutoHTTPProtocol
    opened: dict[Any, None] = {}  # open connections of this server, oldest first

    class GuardedProtocol(base):  # type: ignore[misc, valid-type]
        _head_deadline: asyncio.TimerHandle | None = None
        _body_deadline: asyncio.TimerHandle | None = None
        _cycle_seen: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            opened[self] = None
            if max_connections is not None and len(opened) > max_connections:
                oldest_idle = next((c for c in opened if c is not self and c._idle()), None)
                if oldest_idle is not None:
                    oldest_idle._close("over --max-connections: the oldest idle connection goes")
            self._arm_head_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            opened.pop(self, None)
            self._disarm_head_deadline()
            self._disarm_body_deadline()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is not None and self.cycle is not self._cycle_seen:
                self._cycle_seen = self.cycle  # a whole request head arrived
                self._disarm_head_deadline()
                if self._body_pending():
                    self._body_deadline = self.loop.call_later(body_timeout, self._body_timed_out)
            elif self._body_deadline is not None and not self._body_pending():
                self._disarm_body_deadline()  # the body is complete

        def on_response_complete(self) -> None:
            self._disarm_body_deadline()
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_head_deadline()  # the next request's head has the same deadline

        # -- helpers ---------------------------------------------------------------------------
        def _idle(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm_head_deadline(self) -> None:
            self._disarm_head_deadline()
            self._head_deadline = self.loop.call_later(header_timeout, self._head_timed_out)

        def _disarm_head_deadline(self) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None

        def _head_timed_out(self) -> None:
            self._head_deadline = None
            if self._idle():
                self._close("no complete request within --header-timeout")

        def _body_pending(self) -> bool:
            """The current request's body has not all arrived, and nothing was answered yet."""
            cycle = self.cycle
            return cycle is not None and cycle.more_body and not cycle.response_complete

        def _disarm_body_deadline(self) -> None:
            if self._body_deadline is not None:
                self._body_deadline.cancel()
                self._body_deadline = None

        def _body_timed_out(self) -> None:
            self._body_deadline = None
            if not self._body_pending():
                return
            if self.flow.read_paused:  # the server is not reading (back-pressure): not the client's fault
                self._body_deadline = self.loop.call_later(body_timeout, self._body_timed_out)
                return
            detail = b'{"detail":"the request body did not arrive within --body-timeout"}'
            if not self.cycle.response_started:  # else an answer is already under way: just close
                self.transport.write(
                    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(detail), detail)
                )  # the answer the request never got; then the socket goes
            self._close("the request body did not arrive within --body-timeout")

        def _close(self, why: str) -> None:
            opened.pop(self, None)  # at once: connection_lost comes on a later turn of the loop
            if not self.transport.is_closing():
                self.logger.debug("closing a connection: %s", why)
                self.transport.close()

    return GuardedProtocol
