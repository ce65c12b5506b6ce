"""The HTTP/1.1 server ``scribe serve`` runs: uvicorn's h11 protocol, plus the limits it lacks.

Why h11 and not uvicorn's default (httptools): h11 bounds every incomplete protocol event itself
(``max_incomplete_event_size``): the request line and headers, each chunk-size line with its
extensions, and the trailers. httptools buffers all of those without a bound (a 200 MB trailer
is concatenated in memory), so every one needed byte counting of our own in its callbacks, and
each such count was a hole. h11 is pure Python: about half of httptools' requests per second on a
trivial app (``bench/http_protocols.py``), a cost well under a millisecond per request that the
app's own work (a database round trip per request) dwarfs.

What this module adds, per connection (``GuardedH11Protocol``):

- JSON refusals: 431 for a header block (or trailer, or chunk line) past ``max_header_bytes`` or
  more than ``max_headers`` fields, 400 for anything else h11 rejects;
- a deadline for the whole header block from its first byte, and one for the body from the end of
  the headers (408, then close): slowloris connections are cut whatever they trickle in;
- a send deadline: a client that stops reading an answer is disconnected after ``send_timeout``
  (a stalled reader pins at most the transport's write buffer that long);
- uvicorn's own idle keep-alive timeout, from settings;
- caps on open connections: ``max_connections_per_peer`` per client address (an IPv6 client per
  /64), so one client cannot take the server's connections from everyone else, except for the
  trusted proxies (cloudflared on loopback), whose clients are told apart per request
  (``ProxiedClientShare``: the same number of requests in flight per client); and
  ``max_connections`` for all (503 and close past either).

A refusal while the app is already answering the request turns the app's later writes into
no-ops (as uvicorn does for a client that went away), and every refusal logs one line, throttled
per kind (``scribe.http.log_throttle``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import h11
import uvicorn
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from scribe.http.log_throttle import ThrottledLog, throttle_logger
from scribe.http.rate_limit import ClientIdentity

if TYPE_CHECKING:
    from scribe.settings import Settings

log = logging.getLogger(__name__)

_HEADER_FIELD_OVERHEAD = 4  # ": " and CRLF around each header field
_LINGER_SECONDS = 1.0  # after a refusal, input is dropped this long before the socket closes
_STATUS_LINES = {
    400: b"HTTP/1.1 400 Bad Request\r\n",
    408: b"HTTP/1.1 408 Request Timeout\r\n",
    431: b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
    503: b"HTTP/1.1 503 Service Unavailable\r\n",
}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The per-connection limits (see the module docstring)."""

    max_header_bytes: int = 16_384
    max_headers: int = 100
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    send_timeout: float = 30.0
    keepalive_timeout: float = 5.0
    max_connections: int = 1000
    max_connections_per_peer: int = 64
    # Peers whose connections count only against max_connections: proxies that carry many
    # clients (their clients are told apart per request, by scribe.http.rate_limit.ClientIdentity).
    trusted_peers: tuple[Network, ...] = field(default=())

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        """The limits of the ``SCRIBE_HTTP_*`` settings."""
        trusted = [*settings.scribe_cf_trusted_proxies, *settings.scribe_xff_trusted_proxies]
        return cls(
            max_header_bytes=settings.scribe_http_max_header_bytes,
            max_headers=settings.scribe_http_max_headers,
            header_timeout=settings.scribe_http_header_timeout_seconds,
            body_timeout=settings.scribe_http_body_timeout_seconds,
            send_timeout=settings.scribe_http_send_timeout_seconds,
            keepalive_timeout=settings.scribe_http_keepalive_seconds,
            max_connections=settings.scribe_http_max_connections,
            max_connections_per_peer=settings.scribe_http_max_connections_per_peer,
            trusted_peers=tuple(ipaddress.ip_network(entry, strict=False) for entry in trusted),
        )


def peer_key(host: str) -> str:
    """The address a client's connections are counted under: IPv4 as is, IPv6 per /64 (one
    subscriber's allocation), an IPv4-mapped IPv6 address as its IPv4 address."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # a Unix socket path, or whatever the transport reports
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _within(host: str, networks: tuple[Network, ...], *, otherwise: bool) -> bool:
    """Whether the address ``host`` is in one of ``networks`` (``otherwise`` if it is none)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return otherwise
    return any(address in network for network in networks)


_refusals = ThrottledLog(log)


class _LimitedConnection(h11.Connection):
    """h11's server connection, also refusing more than ``max_headers`` header fields, and
    remembering why it refused a request (h11 raises before uvicorn can tell us)."""

    def __init__(self, max_header_bytes: int, max_headers: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_header_bytes)
        self.max_headers = max_headers
        self.refusal: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            self.refusal = exc
            raise
        if isinstance(event, h11.Request):
            self._check(event)
        return event

    def _check(self, request: h11.Request) -> None:
        # h11 bounds an *incomplete* event; a complete one that arrived in a single read may be
        # larger, up to the read size. The limit is ours to keep exactly.
        if len(request.headers) > self.max_headers:
            self.refusal = h11.RemoteProtocolError(
                f"More than {self.max_headers} header fields.", error_status_hint=431
            )
            raise self.refusal
        size = len(request.target) + sum(
            len(name) + len(value) + _HEADER_FIELD_OVERHEAD for name, value in request.headers
        )
        if size > self._max_incomplete_event_size:
            self.refusal = h11.RemoteProtocolError("Receive buffer too long", error_status_hint=431)
            raise self.refusal


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the limits of ``limits`` (set on a subclass, with its own
    per-peer counts, by ``guarded_protocol``)."""

    limits: ClassVar[HttpLimits] = HttpLimits()
    peers: ClassVar[Counter[str]] = Counter()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn: _LimitedConnection = _LimitedConnection(
            self.limits.max_header_bytes, self.limits.max_headers
        )
        self._peer: str | None = None  # counted in ``peers`` while connected
        self._deadline: asyncio.TimerHandle | None = None
        self._awaiting: object = None  # the h11 state of the client a deadline is for
        self._fresh = True  # no request yet: the header deadline runs from the connection's start
        self._send_deadline: asyncio.TimerHandle | None = None
        self._draining = False

    # Connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            _refusals.info("connections", "refused a connection: %d open", len(self.connections))
            self._refuse(503, "Too many open connections; try again shortly.")
            return
        if not self._admit_peer():
            _refusals.info("peer-connections", "refused a connection: its client has too many")
            self._refuse(503, "Too many open connections from your address; close some.")
            return
        self._watch_state()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._cancel_send_deadline()
        if self._peer is not None:
            self.peers[self._peer] -= 1
            if self.peers[self._peer] <= 0:
                del self.peers[self._peer]
            self._peer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._draining:
            return  # refused: what was already read is dropped
        super().data_received(data)
        if not self._draining:
            self._watch_state()

    def send_400_response(self, msg: str) -> None:
        refusal, self.conn.refusal = self.conn.refusal, None
        if refusal is not None and refusal.error_status_hint == 431:
            _refusals.info("headers", "refused a request: %s", refusal)
            detail = str(refusal)
            if detail == "Receive buffer too long":
                detail = (
                    "Request line, headers or a chunk line are larger than "
                    f"{self.limits.max_header_bytes} bytes."
                )
            self._refuse(431, detail)
            return
        _refusals.info("invalid", "refused an invalid HTTP request: %s", refusal)
        self._refuse(400, "Invalid HTTP request.")

    def shutdown(self) -> None:
        if self._draining:  # refused, lingering: nothing more to say on it
            self._close()
            return
        super().shutdown()

    def on_response_complete(self) -> None:
        # uvicorn arms its keep-alive timer here, and starts a pipelined next request if one is
        # buffered: a deadline for that one, none for an idle connection (keep-alive's turn).
        super().on_response_complete()
        if not self._draining and not self.transport.is_closing():
            self._watch_state()

    # Flow control: a reader that stops reading is cut after send_timeout.

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_deadline is None:
            self._send_deadline = self.loop.call_later(
                self.limits.send_timeout, self._send_deadline_passed
            )

    def resume_writing(self) -> None:
        self._cancel_send_deadline()
        super().resume_writing()

    def _send_deadline_passed(self) -> None:
        self._send_deadline = None
        _refusals.info("send-timeout", "closed a connection: the client stopped reading")
        self.transport.abort()  # what is buffered for it is dropped with the connection

    def _cancel_send_deadline(self) -> None:
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None

    # Deadlines follow h11's view of the client: waiting for a request's headers, or its body.

    def _watch_state(self) -> None:
        state = self.conn.their_state
        if state is h11.IDLE:
            if self._fresh or self.conn.trailing_data[0]:
                self._expect(h11.IDLE, self.limits.header_timeout, self._header_deadline_passed)
            else:
                self._disarm()  # idle between requests: uvicorn's keep-alive timeout closes it
            return
        self._fresh = False
        if state is h11.SEND_BODY:
            self._expect(h11.SEND_BODY, self.limits.body_timeout, self._body_deadline_passed)
        else:
            self._disarm()  # the request is in; the app answers it (or the connection closes)

    def _expect(self, state: Any, delay: float, callback: Callable[[], None]) -> None:
        if self._awaiting is not state:
            self._disarm()
            self._awaiting = state
            self._deadline = self.loop.call_later(delay, callback)

    def _header_deadline_passed(self) -> None:
        self._deadline = self._awaiting = None
        if not self.conn.trailing_data[0]:
            self._close()  # connected (or idle after an answer) but never sent a byte
            return
        _refusals.info("header-timeout", "closed a connection: headers too slow")
        self._refuse(408, f"Request headers not received within {self.limits.header_timeout} s.")

    def _body_deadline_passed(self) -> None:
        self._deadline = self._awaiting = None
        _refusals.info("body-timeout", "closed a connection: request body too slow")
        if self.cycle is not None and not self.cycle.response_started:
            self._refuse(408, f"Request body not received within {self.limits.body_timeout} s.")
        else:
            self._close()

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self._awaiting = None

    # Refusals

    def _admit_peer(self) -> bool:
        peer = self.client[0] if self.client else None
        # Not an IP peer (a Unix socket): only the global cap applies.
        if peer is None or _within(peer, self.limits.trusted_peers, otherwise=True):
            return True
        key = peer_key(peer)
        if self.peers[key] >= self.limits.max_connections_per_peer:
            return False
        self.peers[key] += 1
        self._peer = key
        return True

    def _refuse(self, status: int, detail: str) -> None:
        """Answer ``status`` with a JSON detail (if the transport is open) and close; a request
        the app is still answering sees a disconnect, and its later writes are dropped."""
        self._disarm()
        if self.conn.our_state is not h11.ERROR:
            self.conn.send_failed()  # the answer goes out below, past h11: it says nothing more
        if self.cycle is not None:
            self.cycle.disconnected = True
            self.cycle.keep_alive = False
            self.cycle.message_event.set()  # a receive() waiting for more body returns now
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_json_answer(status, detail))
        if not self.transport.can_write_eof():
            self._close()
            return
        # Lingering close: closing a socket at once with input still arriving sends a reset,
        # which can destroy the answer before the client reads it. Half-close instead, stop
        # reading (the rest of a 100 MB header is never read, only left in the kernel's
        # buffers), and close for good after a short grace in which the client reads the answer.
        self.transport.write_eof()
        self._draining = True
        self.transport.pause_reading()
        self._deadline = self.loop.call_later(_LINGER_SECONDS, self._close)

    def _close(self) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.close()


def _json_answer(status: int, detail: str) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    head = [
        _STATUS_LINES[status],
        b"content-type: application/json\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"x-content-type-options: nosniff\r\n",
        b"connection: close\r\n",
        b"\r\n",
    ]
    return b"".join([*head, body])


def guarded_protocol(limits: HttpLimits) -> type[GuardedH11Protocol]:
    """A protocol class for uvicorn's ``http=`` enforcing ``limits``, with its own peer counts."""
    attributes = {"limits": limits, "peers": Counter()}
    return type("GuardedH11Protocol", (GuardedH11Protocol,), attributes)


def uvicorn_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration ``scribe serve`` runs with: the guarded h11 protocol, the
    keep-alive timeout of the settings, and no ``X-Forwarded-For`` rewriting of the client address
    (the rate limiter decides whom to believe: scribe.http.rate_limit.ClientIdentity). uvicorn's own
    warnings about invalid requests are throttled like ours."""
    limits = HttpLimits.from_settings(settings)
    throttle_logger(logging.getLogger("uvicorn.error"))
    defaults: dict[str, Any] = {
        "http": guarded_protocol(limits),
        "h11_max_incomplete_event_size": limits.max_header_bytes,
        "timeout_keep_alive": limits.keepalive_timeout,
        "proxy_headers": False,
        "server_header": False,
        "access_log": False,
    }
    return uvicorn.Config(app, **{**defaults, **options})


class ProxiedClientShare:
    """ASGI middleware: the per-peer share for clients behind a trusted proxy.

    Their connections all come from the proxy (cloudflared on loopback), so the protocol cannot
    tell them apart; here, once the headers are in, each client (``CF-Connecting-IP`` or
    ``X-Forwarded-For`` as ``identity`` believes them) may have at most ``limit`` requests in
    flight (open streams included): past it, 503 and one throttled log line. Direct clients are
    bounded per connection by GuardedH11Protocol instead.
    """

    def __init__(self, app: ASGIApp, identity: ClientIdentity, limit: int) -> None:
        self.app = app
        self.identity = identity
        self.limit = limit
        self.in_flight: Counter[str] = Counter()
        self._proxies = (*identity.cf_proxies, *identity.xff_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client") if scope["type"] == "http" else None
        if client is None or not _within(client[0], self._proxies, otherwise=False):
            await self.app(scope, receive, send)
            return
        key = self.identity.key(scope)
        if self.in_flight[key] >= self.limit:
            _refusals.info("proxied-share", "refused a request: its client has too many open")
            detail = "Too many open requests from your address; close some."
            await JSONResponse({"detail": detail}, status_code=503)(scope, receive, send)
            return
        self.in_flight[key] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight[key] -= 1
            if self.in_flight[key] <= 0:
                del self.in_flight[key]
