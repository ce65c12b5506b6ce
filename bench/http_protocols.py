"""What the HTTP server choice costs: uvicorn's httptools and h11 protocols, plain, and the
guarded h11 protocol ``scribe serve`` runs (scribe.http.guard), on a trivial Starlette app.

The app does nothing (one small JSON answer), so the figures are the parser's and the server's
own cost per request, an upper bound on what the choice changes for the real app (whose requests
each make a database round trip: bench/api_latency.py). Each server runs in its own process on
a free loopback port; 8 keep-alive clients in another process send ``--requests`` requests each
(with a bearer token and browser-like headers), in alternating rounds.

    .venv/bin/python bench/http_protocols.py [--requests 2000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CLIENTS = 8
REQUEST = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + b"t" * 600 + b"\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
    b"\r\nAccept: application/json\r\nAccept-Language: en-GB,en;q=0.9\r\n"
    b"Origin: http://localhost:3000\r\nX-Request-ID: 0123456789abcdef\r\n\r\n"
)
SERVERS = ("httptools", "h11", "guarded-h11")


def _app() -> object:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def answer(request: object) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/", answer)])


def _serve(kind: str, port: int) -> None:
    """Body of ``--serve KIND``: one server until killed."""
    import uvicorn

    from scribe.http.guard import uvicorn_config
    from scribe.settings import Settings

    options = {"host": "127.0.0.1", "port": port, "log_level": "warning"}
    if kind == "guarded-h11":
        config = uvicorn_config(_app(), Settings(_env_file=None), **options)
    else:
        config = uvicorn.Config(_app(), http=kind, access_log=False, **options)  # type: ignore[arg-type]
    uvicorn.Server(config).run()


async def _client(port: int, count: int, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(count):
        started = time.perf_counter()
        writer.write(REQUEST)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
    writer.close()


async def _load(port: int, count: int) -> tuple[float, float, float]:
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, count, latencies) for _ in range(CLIENTS)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return (
        len(latencies) / elapsed,
        latencies[len(latencies) // 2] * 1000,
        latencies[int(len(latencies) * 0.99)] * 1000,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _ready(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise SystemExit(f"no server on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per client and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.port)
    else:
        asyncio.run(_compare(args.requests, args.rounds))


async def _compare(requests: int, rounds: int) -> None:
    best: dict[str, tuple[float, float, float]] = {}
    for _ in range(rounds):
        for kind in SERVERS:
            port = _free_port()
            server = subprocess.Popen(
                [sys.executable, __file__, "--serve", kind, "--port", str(port)],
                stdin=subprocess.DEVNULL,
            )
            try:
                await _ready(port)
                await _load(port, 100)  # warm-up
                figures = await _load(port, requests)
            finally:
                server.terminate()
                server.wait(timeout=30)
            if kind not in best or figures[0] > best[kind][0]:
                best[kind] = figures
    print(f"{CLIENTS} keep-alive clients x {requests} requests, best of {rounds} rounds")
    for kind in SERVERS:
        rate, p50, p99 = best[kind]
        share = rate / best["httptools"][0]
        cost = (1 / rate - 1 / best["httptools"][0]) * 1e6
        print(
            f"{kind:12} {rate:7.0f} req/s ({share:.0%} of httptools, +{cost:.0f} us per request)"
            f"  p50 {p50:.2f} ms  p99 {p99:.2f} ms"
        )


if __name__ == "__main__":
    main()
