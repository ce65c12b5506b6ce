"""HTTP limits of ``scribe serve`` (scribe.http.guard) over real sockets: header, trailer and
chunk-line size, header count, slow headers and bodies, stalled readers, idle keep-alive, open
connections per peer and in all; all refusals JSON with nosniff, one log line, no traceback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from scribe.http.guard import uvicorn_config
from scribe.settings import Settings
from tests.fakes.server import _QuietServer

CAP = 4096


async def echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body and answers its length."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def guarded_server(**limits: Any) -> contextlib.AbstractAsyncContextManager[int]:
    """``echo_length`` behind the guard of ``scribe serve`` with these settings; yields the port."""
    settings = Settings(_env_file=None, scribe_http_max_header_bytes=CAP, **limits)
    return guarded_server_for(echo_length, settings)


@contextlib.asynccontextmanager
async def guarded_server_for(app: ASGIApp, settings: Settings) -> AsyncIterator[int]:
    """``app`` on the server of ``scribe serve`` with ``settings``; yields the port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn_config(app, settings, lifespan="off", log_level="warning")
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                assert not task.done()
                await asyncio.sleep(0.01)
            yield port
        finally:
            server.stop()
            await task


async def exchange(port: int, *chunks: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``chunks``; return status, headers and body of the answer (read until close)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.create_task(read_all(reader))
    try:
        for chunk in chunks:
            if answer.done():
                break  # the server answered (and closed) while we were still sending
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass
    raw = await asyncio.wait_for(answer, timeout=10)
    writer.close()
    return parse(raw)


async def read_all(reader: asyncio.StreamReader) -> bytes:
    data = b""
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            data += chunk
    return data


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head:
        return 0, {}, b""
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def request(*headers: str, body: bytes = b"", method: str = "GET") -> bytes:
    lines = [f"{method} / HTTP/1.1", "Host: localhost", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def assert_refused(answer: tuple[int, dict[str, str], bytes], status: int, words: str) -> None:
    code, headers, body = answer
    assert code == status, answer
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert words in json.loads(body)["detail"]


async def test_request_within_the_header_cap_is_served() -> None:
    async with guarded_server() as port:
        answer = await exchange(port, request("X-Pad: " + "a" * (CAP - 200)))
    assert answer[0] == 200


async def test_header_past_the_cap_is_431() -> None:
    async with guarded_server() as port:
        answer = await exchange(port, request("X-Pad: " + "a" * (CAP + 10)))
    assert_refused(answer, 431, "larger than 4096 bytes")


async def test_endless_header_is_cut_at_the_cap_not_buffered() -> None:
    chunk = b"a" * 65536
    async with guarded_server() as port:
        # 64 MB offered; the server answers 431 after the first chunks and closes.
        answer = await exchange(port, b"GET / HTTP/1.1\r\nX-Big: ", *([chunk] * 1024))
    assert_refused(answer, 431, "larger than")


async def test_long_request_line_is_431() -> None:
    async with guarded_server() as port:
        line = f"GET /{'a' * (CAP + 10)} HTTP/1.1\r\nHost: x\r\n\r\n"
        answer = await exchange(port, line.encode())
    assert_refused(answer, 431, "larger than")


async def test_too_many_header_fields_is_431() -> None:
    fields = [f"X-F{n}: 1" for n in range(30)]
    async with guarded_server(scribe_http_max_headers=20) as port:
        answer = await exchange(port, request(*fields))
    assert_refused(answer, 431, "More than 20 header fields")


async def test_slow_headers_are_cut_with_408() -> None:
    async with guarded_server(scribe_http_header_timeout_seconds=0.3) as port:
        # Never finishes its header block (a slowloris client).
        answer = await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert_refused(answer, 408, "headers not received")


async def test_silent_connection_is_closed_after_the_header_timeout() -> None:
    async with guarded_server(scribe_http_header_timeout_seconds=0.3) as port:
        answer = await exchange(port)
    assert answer[0] == 0  # closed without an answer


async def test_slow_body_is_cut_with_408() -> None:
    async with guarded_server(scribe_http_body_timeout_seconds=0.3) as port:
        partial = request("Content-Length: 100", method="POST", body=b"x" * 10)
        answer = await exchange(port, partial)
    assert_refused(answer, 408, "body not received")


async def test_idle_keep_alive_connection_is_closed() -> None:
    async with guarded_server(scribe_http_keepalive_seconds=0.3) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        raw = await asyncio.wait_for(read_all(reader), timeout=10)  # ends when the server closes
        writer.close()
    assert parse(raw)[0] == 200


async def test_connections_past_the_cap_get_503() -> None:
    async with guarded_server(scribe_http_max_connections=2) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        answer = await exchange(port, request())
        for _, writer in held:
            writer.close()
        # Once they are gone, a new connection is served again.
        await asyncio.gather(*(writer.wait_closed() for _, writer in held))
        for _ in range(100):
            answer_after = await exchange(port, request())
            if answer_after[0] == 200:
                break
            await asyncio.sleep(0.01)
    assert_refused(answer, 503, "Too many open connections")
    assert answer_after[0] == 200


async def test_invalid_request_is_json_400_with_nosniff() -> None:
    async with guarded_server() as port:
        answer = await exchange(port, b"\x00\x01garbage\r\n\r\n")
    assert_refused(answer, 400, "Invalid HTTP request")


async def answers_anyway(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads until the body ends or the client is gone, then answers all the same (as an app
    that does not check for a disconnect would)."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"late"})


def chunked(*parts: bytes) -> bytes:
    head = "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head.encode() + b"".join(parts)


async def test_oversized_trailer_is_431_not_buffered() -> None:
    chunk = b"a" * 65536
    async with guarded_server() as port:
        # A 64 MB trailer field offered after the last chunk: cut at the cap.
        answer = await exchange(port, chunked(b"1\r\nx\r\n0\r\nX-Trailer: "), *([chunk] * 1024))
    assert_refused(answer, 431, "larger than 4096 bytes")


async def test_chunk_extension_past_the_cap_is_431() -> None:
    async with guarded_server() as port:
        answer = await exchange(port, chunked(b"1;ext=" + b"e" * (2 * CAP)))
    assert_refused(answer, 431, "larger than")


async def test_bodies_past_the_header_cap_are_served() -> None:
    """A body counts against the route's body limit, never the header cap (a 26 KB batch)."""
    body = b"x" * (8 * CAP)
    async with guarded_server() as port:
        sized = await exchange(port, request(f"Content-Length: {len(body)}", method="POST") + body)
        parts = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 5000]), body[i : i + 5000])
            for i in range(0, len(body), 5000)
        )
        streamed = await exchange(port, chunked(parts + b"0\r\n\r\n"))
    assert sized == (200, sized[1], str(len(body)).encode())
    assert streamed[0] == 200 and streamed[2] == str(len(body)).encode()


async def test_two_thousand_pipelined_requests_are_all_answered() -> None:
    one = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    async with guarded_server() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(one * 1999 + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        raw = await asyncio.wait_for(read_all(reader), timeout=30)
        writer.close()
    assert raw.count(b"HTTP/1.1 200 OK\r\n") == 2000
    assert b"431" not in raw


async def test_one_peer_at_its_limit_leaves_other_peers_served() -> None:
    # No trusted proxy: as with the port exposed (the Docker image binds 0.0.0.0).
    limits = {"scribe_http_max_connections_per_peer": 2, "scribe_cf_trusted_proxies": []}
    async with guarded_server(**limits) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        refused = await exchange(port, request())
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=("127.0.0.2", 0)
        )
        writer.write(request())
        other = parse(await asyncio.wait_for(read_all(reader), timeout=10))
        writer.close()
        for _, held_writer in held:
            held_writer.close()
    assert_refused(refused, 503, "from your address")
    assert other[0] == 200


async def test_a_trusted_proxy_counts_only_against_the_global_cap() -> None:
    # cloudflared on loopback carries every client: they are told apart per request instead.
    async with guarded_server(scribe_http_max_connections_per_peer=2) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        answer = await exchange(port, request())
        for _, writer in held:
            writer.close()
    assert answer[0] == 200


async def test_refusals_mid_request_log_a_line_not_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    uvicorn_log = logging.getLogger("uvicorn")
    uvicorn_log.addHandler(caplog.handler)
    settings = Settings(_env_file=None, scribe_http_max_header_bytes=CAP)
    try:
        with caplog.at_level(logging.INFO):
            async with guarded_server_for(answers_anyway, settings) as port:
                answers = [
                    await exchange(port, chunked(b"5\r\nhello\r\nzz\r\n")) for _ in range(50)
                ]
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    assert all(answer[0] == 400 for answer in answers), answers[:3]
    assert all(b"late" not in answer[2] for answer in answers)
    assert not [record for record in caplog.records if record.exc_info]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(caplog.records) <= 4, [record.getMessage() for record in caplog.records]


async def test_a_client_that_stops_reading_is_disconnected() -> None:
    finished = asyncio.Event()

    async def large(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(256):  # 16 MiB that the client never reads
            await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        finished.set()

    settings = Settings(_env_file=None, scribe_http_send_timeout_seconds=0.3)
    async with guarded_server_for(large, settings) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request())
        await writer.drain()
        # The app's writes end (dropped) once the server gives up on the reader.
        await asyncio.wait_for(finished.wait(), timeout=20)
        with contextlib.suppress(ConnectionError):
            while await asyncio.wait_for(reader.read(2**20), timeout=20):
                pass  # what was in flight, then the end of the stream
        writer.close()
