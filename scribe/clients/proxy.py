"""A tiny in-process HTTP proxy that applies the SSRF rule to everything Chromium loads.

Chromium is launched with this proxy for every scheme (loopback included: Playwright adds
``<-loopback>`` to the bypass list), so navigations, redirects, subresources, fetch/XHR and
WebSockets all arrive here. Each request's host is resolved and checked with ``AddressPolicy``
and the proxy connects to the checked address; anything refused gets a 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import urlsplit

from scribe.clients.netguard import AddressPolicy
from scribe.errors import FetchRefused

log = logging.getLogger(__name__)

_HEAD_LIMIT = 64 * 1024
REFUSED_HEADER = "x-scribe-refused"
# Bytes one proxied connection may bring back from upstream: the browser's equivalent of the
# httpx download cap, enforced while streaming (a page cannot make Chromium swallow gigabytes).
MAX_RESPONSE_BYTES = 8_000_000


class FilteringProxy:
    """HTTP proxy on 127.0.0.1 (CONNECT for https, absolute-form for http) enforcing a policy."""

    def __init__(self, policy: AddressPolicy, *, max_response_bytes: int = MAX_RESPONSE_BYTES):
        self._policy = policy
        self._max_response_bytes = max_response_bytes
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.oversized: list[str] = []  # hosts whose answer was cut at the size cap

    @property
    def url(self) -> str:
        """The proxy's address for Chromium's ``--proxy-server``."""
        assert self._server is not None, "proxy not started"
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def close(self) -> None:
        """Stop listening and drop open tunnels."""
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # the peer went away or spoke garbage: nothing to report to anyone
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _HEAD_LIMIT:
            return
        request_line, _, header_block = head.decode("latin-1").partition("\r\n")
        method, target, version = request_line.split(" ", 2)
        if method.upper() == "CONNECT":
            host, _, port_text = target.rpartition(":")
            port, rest = int(port_text), b""
        else:
            parts = urlsplit(target)
            if parts.scheme != "http" or not parts.hostname:
                await _refuse(writer, "only http and https are proxied")
                return
            host, port = parts.hostname, parts.port or 80
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            headers = [
                line
                for line in header_block.split("\r\n")
                if line and not line.lower().startswith(("proxy-", "connection:", "keep-alive:"))
            ]
            # One request per upstream connection: Chromium may reuse a proxy connection for
            # another host, which must be checked again.
            headers.append("Connection: close")
            lines = [f"{method} {path} {version}", *headers, "", ""]
            rest = "\r\n".join(lines).encode("latin-1")
        try:
            address = await self._policy.resolve(host, port)
        except FetchRefused as exc:
            log.info("proxy refused %s:%s: %s", host, port, exc)
            await _refuse(writer, str(exc))
            return
        upstream_reader, upstream_writer = await asyncio.wait_for(
            asyncio.open_connection(str(address), port), timeout=10
        )
        if method.upper() == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            upstream_writer.write(rest)
        try:
            async with asyncio.TaskGroup() as pipes:  # past the cap, both directions stop
                pipes.create_task(_pipe(reader, upstream_writer))
                pipes.create_task(_pipe(upstream_reader, writer, limit=self._max_response_bytes))
        except* _TooLarge:
            self.oversized.append(host)
            log.info("proxy cut %s:%s at %d bytes", host, port, self._max_response_bytes)
        finally:
            upstream_writer.close()
            with contextlib.suppress(OSError):
                await upstream_writer.wait_closed()


class _TooLarge(Exception):
    """Upstream sent more than the connection's byte cap."""


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, limit: int | None = None
) -> None:
    relayed = 0
    try:
        while chunk := await reader.read(65536):
            relayed += len(chunk)
            if limit is not None and relayed > limit:
                raise _TooLarge
            writer.write(chunk)
            await writer.drain()
    except OSError:
        pass  # the other side closed; the tunnel ends
    finally:
        if writer.can_write_eof():
            with contextlib.suppress(OSError):
                writer.write_eof()


async def _refuse(writer: asyncio.StreamWriter, reason: str) -> None:
    body = f"Refused by Scribe's fetch policy: {reason}\n".encode()
    writer.write(
        b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n"
        + f"{REFUSED_HEADER}: 1\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
