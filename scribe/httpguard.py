"""HTTP/1.1 limits uvicorn lacks, enforced in its protocol, on every connection it accepts.

uvicorn's default protocol (httptools) has no cap on the request line and headers: a 100 MB header
is buffered (and re-concatenated as it grows) before the app sees anything, and it never times out
a client that sends its headers or body slowly. Its h11 protocol caps headers
(``h11_max_incomplete_event_size``) but answers 400 rather than 431, has no header or body
timeout either and is slower. So ``scribe serve`` runs httptools through
``GuardedHttpToolsProtocol``, which adds, per connection:

- a cap on request-line + header bytes (431), counted as bytes arrive, before httptools buffers
  them, and on the number of header fields (431);
- a deadline for the whole header block from the first byte (or from the connection's start), and
  one for the whole body from the end of the headers (408, then close): slowloris connections are
  cut after ``header_timeout`` seconds whatever they trickle in;
- uvicorn's own idle keep-alive timeout, from settings;
- a cap on open connections (503 and close past it).

Every refusal is a JSON ``{"detail": …}`` with ``X-Content-Type-Options: nosniff`` and one log line
(throttled: a flood of refusals logs one line per kind every few seconds).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

if TYPE_CHECKING:
    from scribe.settings import Settings

log = logging.getLogger(__name__)

_LOG_EVERY_SECONDS = 10.0
_HEADER_FIELD_OVERHEAD = 4  # ": " and CRLF around each header field
_REQUEST_LINE_OVERHEAD = 32  # method, spaces, "HTTP/1.1", CRLF
_LINGER_SECONDS = 1.0  # after a refusal, input is dropped this long before the socket closes


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The per-connection limits (see the module docstring)."""

    max_header_bytes: int = 16_384
    max_headers: int = 100
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 5.0
    max_connections: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        """The limits of the ``SCRIBE_HTTP_*`` settings."""
        return cls(
            max_header_bytes=settings.scribe_http_max_header_bytes,
            max_headers=settings.scribe_http_max_headers,
            header_timeout=settings.scribe_http_header_timeout_seconds,
            body_timeout=settings.scribe_http_body_timeout_seconds,
            keepalive_timeout=settings.scribe_http_keepalive_seconds,
            max_connections=settings.scribe_http_max_connections,
        )


class _ThrottledLog:
    """One log line per kind of refusal every _LOG_EVERY_SECONDS, with the count in between."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def info(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, float("-inf")) < _LOG_EVERY_SECONDS:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last[kind] = now
        more = self._suppressed.pop(kind, 0)
        suffix = f" (and {more} more since the last such line)" if more else ""
        log.info(message + suffix, *args)


_refusals = _ThrottledLog()


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; data_received answers it."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of ``limits`` (set on a subclass by
    ``guarded_protocol``)."""

    limits: ClassVar[HttpLimits] = HttpLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_headers = True  # between a message's start (or the last's end) and headers
        self._header_bytes = 0  # raw bytes received while the header block is incomplete
        self._parsed_header_bytes = 0  # url + header fields, as the parser reports them
        self._header_count = 0
        self._message_begun = False
        self._refusal: tuple[int, str] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._draining = False

    # Connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            _refusals.info(
                "connections", "refused a connection: %d open", self.limits.max_connections
            )
            self._refuse(503, "Too many open connections; try again shortly.")
            return
        self._arm(self.limits.header_timeout, self._header_deadline_passed)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._draining:
            return  # refused: what was already read is dropped
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():  # as uvicorn does (the app serves no websockets)
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(*self._refusal)
            else:
                _refusals.info("invalid", "refused an invalid HTTP request")
                self._refuse(400, "Invalid HTTP request.")
            return
        if self._reading_headers:
            # Still inside a header block: every byte of this chunk counts (an over-count only
            # for a pipelined message ending inside it).
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._refuse_headers_too_large()

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, msg)

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._message_begun = True
        self._header_bytes = 0
        self._parsed_header_bytes = _REQUEST_LINE_OVERHEAD
        self._header_count = 0
        if self._deadline is None:  # a keep-alive connection's next request
            self._arm(self.limits.header_timeout, self._header_deadline_passed)

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refusal = (431, f"More than {self.limits.max_headers} header fields.")
            raise _Refused
        self._count_header_bytes(len(name) + len(value) + _HEADER_FIELD_OVERHEAD)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._arm(self.limits.body_timeout, self._body_deadline_passed)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._reading_headers = True
        self._message_begun = False
        self._header_bytes = 0
        super().on_message_complete()

    # Limits

    def _count_header_bytes(self, size: int) -> None:
        self._parsed_header_bytes += size
        if self._parsed_header_bytes > self.limits.max_header_bytes:
            self._refusal = self._headers_too_large()
            raise _Refused

    def _headers_too_large(self) -> tuple[int, str]:
        return (
            431,
            f"Request line and headers are larger than {self.limits.max_header_bytes} bytes.",
        )

    def _refuse_headers_too_large(self) -> None:
        _refusals.info("headers", "refused a request: header block past the cap")
        self._refuse(*self._headers_too_large())

    def _header_deadline_passed(self) -> None:
        self._deadline = None
        if not self._message_begun:
            self._close()  # connected but never sent a byte (or idle before a next request)
            return
        _refusals.info("header-timeout", "closed a connection: headers too slow")
        self._refuse(408, f"Request headers not received within {self.limits.header_timeout} s.")

    def _body_deadline_passed(self) -> None:
        self._deadline = None
        _refusals.info("body-timeout", "closed a connection: request body too slow")
        if self.cycle is not None and not self.cycle.response_started:
            self.cycle.keep_alive = False
            self._refuse(408, f"Request body not received within {self.limits.body_timeout} s.")
        else:
            self._close()

    def _arm(self, delay: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _refuse(self, status: int, detail: str) -> None:
        """Answer ``status`` with a JSON detail (if the transport is open) and close."""
        self._disarm()
        if self.transport.is_closing():
            return
        body = json.dumps({"detail": detail}).encode()
        head = [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"x-content-type-options: nosniff\r\n",
            b"connection: close\r\n",
            b"\r\n",
        ]
        self.transport.write(b"".join([*head, body]))
        if not self.transport.can_write_eof():
            self._close()
            return
        # Lingering close: closing a socket at once with input still arriving sends a reset,
        # which can destroy the answer before the client reads it. Half-close instead, stop
        # reading (a 100 MB header is not read to its end, only left in the kernel's buffers),
        # and close for good after a short grace in which the client reads the answer.
        self.transport.write_eof()
        self._draining = True
        self.transport.pause_reading()
        self._deadline = self.loop.call_later(_LINGER_SECONDS, self._close)

    def _close(self) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(limits: HttpLimits) -> type[GuardedHttpToolsProtocol]:
    """A protocol class for uvicorn's ``http=`` enforcing ``limits``."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})


def uvicorn_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration ``scribe serve`` runs with: the guarded protocol, the keep-alive
    timeout of the settings, and no ``X-Forwarded-For`` rewriting of the client address (the rate
    limiter decides whom to believe: scribe.ratelimit.ClientIdentity)."""
    limits = HttpLimits.from_settings(settings)
    defaults: dict[str, Any] = {
        "http": guarded_protocol(limits),
        "timeout_keep_alive": limits.keepalive_timeout,
        "proxy_headers": False,
        "server_header": False,
        "access_log": False,
    }
    return uvicorn.Config(app, **{**defaults, **options})
