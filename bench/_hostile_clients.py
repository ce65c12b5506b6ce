"""The hostile clients of bench/hostile_http.py beyond headers and slowloris: trailers, idle
sockets, stream floods, malformed chunks, readers that never read; and a well-behaved client on
another loopback address that counts what it is refused. Every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx

OTHER_PEER = "127.0.0.2"  # a second client address on loopback
TRAILER_CHUNK = b"t" * 2**20


async def _status_line(reader: asyncio.StreamReader) -> str:
    with contextlib.suppress(ConnectionError, TimeoutError):
        data = await asyncio.wait_for(reader.read(200), 60)
        return data.split(b"\r\n")[0].decode() or "(closed)"
    return "(closed)"


async def big_trailer(port: int, size: int) -> tuple[str, int]:
    """A chunked POST whose trailer field is ``size`` bytes, sent to its end unless the server
    cuts the connection (an answer alone does not stop it); the status line and bytes sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.create_task(_status_line(reader))
    sent = 0
    with contextlib.suppress(ConnectionError):
        writer.write(
            b"POST /api/queue/batch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/json\r\n\r\n2\r\n{}\r\n0\r\nX-Trailer: "
        )
        while sent < size:
            writer.write(TRAILER_CHUNK)
            await asyncio.wait_for(writer.drain(), 60)
            sent += len(TRAILER_CHUNK)
    status = await answer
    writer.close()
    return status, sent


async def trailers(port: int, parallel: int, size: int) -> str:
    """``parallel`` clients at once, each one trailer of ``size`` bytes."""
    results = await asyncio.gather(*(big_trailer(port, size) for _ in range(parallel)))
    statuses: dict[str, int] = {}
    for status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    most = max(sent for _, sent in results) / 2**20
    return f"{statuses}; at most {most:.0f} MiB of a trailer sent before the server cut it"


async def idle_sockets(port: int, count: int, seconds: float) -> str:
    """Keep ``count`` connections from 127.0.0.1 open and silent for ``seconds``, opening a new
    one for each the server refuses or closes; count the refusals (503) and silent closes."""
    deadline = time.perf_counter() + seconds
    outcomes = {"503": 0, "closed": 0, "connect failed": 0}

    async def holder() -> None:
        while time.perf_counter() < deadline:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                outcomes["connect failed"] += 1
                await asyncio.sleep(0.5)
                continue
            with contextlib.suppress(TimeoutError, ConnectionError):
                async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
                    data = await reader.read(20)
                    outcomes["503" if data.startswith(b"HTTP/1.1 503") else "closed"] += 1
            writer.close()

    await asyncio.gather(*(holder() for _ in range(count)))
    return f"{count} idle sockets from 127.0.0.1 kept open for {seconds:.0f} s: {outcomes}"


async def stream_opens(port: int, token: str, count: int, hold: float) -> str:
    """Open ``count`` queue streams as one user, 50 at a time, each kept up to ``hold`` s."""
    outcomes: dict[str, int] = {}
    headers = {"Authorization": f"Bearer {token}"}

    async def one(client: httpx.AsyncClient) -> None:
        outcome = "error"
        try:
            async with client.stream("GET", "/api/queue/stream", headers=headers) as response:
                outcome = str(response.status_code)
                if response.status_code == 200:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(hold):
                            async for line in response.aiter_lines():
                                if line.startswith("event: replaced"):
                                    outcome = "200, then replaced"
                                    break
        except httpx.HTTPError:
            outcome = "connection refused or cut"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        for start in range(0, count, 50):
            await asyncio.gather(*(one(client) for _ in range(min(50, count - start))))
    return f"{count} stream opens: {outcomes}"


async def malformed_chunks(port: int, count: int, parallel: int = 50) -> str:
    """``count`` chunked requests with an invalid chunk after the headers (the app has started),
    ``parallel`` at a time from as many loopback addresses (127.0.1.x: each stays within its
    per-address connection share while the server lingers on its refusals)."""
    statuses: dict[str, int] = {}

    async def one(n: int) -> None:
        source = (f"127.0.1.{1 + n % parallel}", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=source)
        writer.write(
            b"POST /api/queue/batch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/json\r\n\r\n2\r\n{}\r\nzz\r\n"
        )
        status = await _status_line(reader)
        statuses[status] = statuses.get(status, 0) + 1
        with contextlib.suppress(ConnectionError, TimeoutError):
            while await asyncio.wait_for(reader.read(4096), 10):
                pass
        writer.close()

    for start in range(0, count, parallel):
        await asyncio.gather(*(one(n) for n in range(min(parallel, count - start))))
    return f"{count} malformed chunked requests: {statuses}"


async def non_readers(port: int, token: str, count: int, path: str, seconds: float) -> str:
    """``count`` clients that ask for ``path`` and never read the answer, for ``seconds``; then
    each reads what is left: a connection the server gave up on ends early (reset or closed)."""
    import socket

    clients: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.get_extra_info("socket")
        if sock is not None:  # a small receive window: the answer waits in the server
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        clients.append((reader, writer))
    await asyncio.sleep(seconds)

    # Then every client reads what it can: an answer the server gave up on ends without the
    # chunked encoding's last chunk (what was in the kernel's buffers still arrives).
    async def whole(reader: asyncio.StreamReader) -> bool:
        tail = b""
        with contextlib.suppress(ConnectionError, TimeoutError):
            async with asyncio.timeout(60):
                while chunk := await reader.read(2**20):
                    tail = (tail + chunk)[-5:]
        return tail == b"0\r\n\r\n"

    complete = await asyncio.gather(*(whole(reader) for reader, _ in clients))
    for _, writer in clients:
        writer.close()
    cut = complete.count(False)
    return (
        f"{count} clients asked for {path} and read nothing for {seconds:.0f} s; "
        f"{cut} of them found their connection cut by the server"
    )


class OtherPeer:
    """A well-behaved client on OTHER_PEER: GET /api/user/profile on a new connection each time,
    counting answers that are not 200."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.token = token
        self.done = 0
        self.failed: dict[str, int] = {}
        self._stop = asyncio.Event()

    async def run(self) -> None:
        transport = httpx.AsyncHTTPTransport(local_address=OTHER_PEER)
        limits = httpx.Limits(max_keepalive_connections=0)
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(
            base_url=self.base_url, transport=transport, limits=limits, timeout=10, headers=headers
        ) as client:
            while not self._stop.is_set():
                try:
                    response = await client.get("/api/user/profile")
                    outcome = None if response.status_code == 200 else str(response.status_code)
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                self.done += 1
                if outcome is not None:
                    self.failed[outcome] = self.failed.get(outcome, 0) + 1
                await asyncio.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()

    def summary(self) -> str:
        failed = sum(self.failed.values())
        share = failed / self.done if self.done else 0.0
        return (
            f"other peer: {self.done} requests, {failed} not answered 200 ({share:.1%}) "
            f"{self.failed}"
        )


async def with_other_peer(base_url: str, token: str, attack: asyncio.Future[str]) -> str:
    """Run ``attack`` while OtherPeer makes requests; the attack's line and the peer's."""
    peer = OtherPeer(base_url, token)
    task = asyncio.create_task(peer.run())
    started = time.perf_counter()
    try:
        detail = await attack
    finally:
        peer.stop()
        await task
    return f"{detail}; {peer.summary()}; {time.perf_counter() - started:.1f} s"
