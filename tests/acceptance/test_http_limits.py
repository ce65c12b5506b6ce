"""HTTP limits of ``scribe serve`` (scribe.httpguard) over real sockets: header size and count,
slow headers and bodies, idle keep-alive, open connections; all refusals JSON with nosniff."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

from starlette.types import Receive, Scope, Send

from scribe.httpguard import uvicorn_config
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


@contextlib.asynccontextmanager
async def guarded_server(**limits: Any) -> AsyncIterator[int]:
    """``echo_length`` behind the guard of ``scribe serve`` with these settings; yields the port."""
    settings = Settings(_env_file=None, scribe_http_max_header_bytes=CAP, **limits)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn_config(echo_length, settings, lifespan="off", log_level="warning")
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                assert not task.done()
                await asyncio.sleep(0.01)
            yield port
        finally:
            server.should_exit = True
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
        answer = await exchange(port, f"GET /{'a' * (CAP + 10)} HTTP/1.1\r\n\r\n".encode())
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
