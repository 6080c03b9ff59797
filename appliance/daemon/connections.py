"""Connection hygiene for the HTTP listener: what uvicorn alone does not bound.

uvicorn waits forever for the first request on a connection and for the rest of a request once
bytes started arriving, and accepts connections until the process runs out of file descriptors
(then asyncio logs every failed accept). Here every connection gets a deadline for its whole
request (headers and body), the number of connections is capped overall and per client
address, and what is refused or timed out is logged as a count at a bounded rate, not once per
connection.

Overall cap: a new connection evicts the oldest connection that is still waiting for its
request instead of being refused, so a flood of half-sent headers cannot lock out a POS
terminal whose request arrives in one piece; connections with a request in progress are never
evicted. The per-client cap refuses at once: a flooding address only hurts itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("appliance.connections")

# Refusals, evictions, timeouts and accept errors are summed and logged at most this often.
REPORT_INTERVAL_SECONDS = 10.0


class RateLimitedCounter:
    """Counts events by kind; logs the first at once and then at most one summary per interval."""

    def __init__(self, interval: float = REPORT_INTERVAL_SECONDS) -> None:
        self._interval = interval
        self._counts: Counter[str] = Counter()
        self._last_report = float("-inf")

    def add(self, kind: str) -> None:
        self._counts[kind] += 1
        now = time.monotonic()
        if now - self._last_report >= self._interval:
            self._last_report = now
            log.warning("connections limited", extra={"counts": dict(self._counts)})
            self._counts.clear()


class ConnectionGuard:
    """Shared state of all connections of one listener set."""

    def __init__(
        self,
        request_timeout: float,
        max_connections: int,
        max_per_client: int,
        counter: RateLimitedCounter | None = None,
    ) -> None:
        self.request_timeout = request_timeout
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.counter = counter or RateLimitedCounter()
        self.open = 0
        self.per_client: Counter[str] = Counter()
        # Connections waiting for a (complete) request, oldest first: the eviction candidates.
        self.waiting: dict[GuardedH11Protocol, None] = {}

    def admit(self, connection: GuardedH11Protocol, client: str) -> bool:
        if self.per_client[client] >= self.max_per_client:
            self.counter.add("refused_per_client")
            return False
        if self.open >= self.max_connections:
            if not self.waiting:
                self.counter.add("refused_total")
                return False
            oldest = next(iter(self.waiting))
            oldest.drop("evicted")
        self.open += 1
        self.per_client[client] += 1
        return True

    def release(self, client: str) -> None:
        self.open -= 1
        self.per_client[client] -= 1
        if self.per_client[client] <= 0:
            del self.per_client[client]


def guarded_protocol_class(guard: ConnectionGuard) -> type[H11Protocol]:
    """The h11 protocol class uvicorn instantiates per connection, bound to `guard`."""

    class Bound(GuardedH11Protocol):
        _guard = guard

    return Bound


class GuardedH11Protocol(H11Protocol):
    _guard: ConnectionGuard

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._admitted = False
        self._client_host = ""
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = transport.get_extra_info("peername")
        self._client_host = str(peer[0]) if isinstance(peer, tuple) else ""
        if not self._guard.admit(self, self._client_host):
            # Refused before uvicorn sets the connection up; abort(): no lingering either.
            transport.abort()
            return
        self._admitted = True
        super().connection_made(transport)
        self._await_request()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._admitted:
            return
        self._stop_waiting()
        self._admitted = False
        self._guard.release(self._client_host)
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        # Their side DONE: the whole request (headers and body) has arrived.
        if self._deadline is not None and self.conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.ERROR):
            self._stop_waiting()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._admitted:
            self._await_request()

    def drop(self, reason: str) -> None:
        self._stop_waiting()
        self._guard.counter.add(reason)
        self.transport.abort()

    def _await_request(self) -> None:
        self._stop_waiting()
        self._deadline = self.loop.call_later(self._guard.request_timeout, self.drop, "request_timeout")
        self._guard.waiting[self] = None

    def _stop_waiting(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._guard.waiting.pop(self, None)


def install_accept_error_filter(loop: asyncio.AbstractEventLoop, counter: RateLimitedCounter) -> None:
    """asyncio reports each failed accept() (EMFILE, ENFILE, ENOBUFS) through the loop's
    exception handler, thousands of times a second under a flood; count them instead."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            counter.add("accept_failed")
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
