"""Hostile HTTP clients against a real ``scribe serve``: what do other users notice?

Starts ``scribe serve`` (embedded PostgreSQL in a temporary data dir, or DATABASE_URL) on a free
loopback port, with a JWKS fake on loopback as its identity provider, and a ``GET /health`` loop
on its own connection that records every latency. Then, one after the other:

  (a) one client sending 100 MB headers, one connection after another, for 5 s;
  (b) four of them in parallel;
  (c) 200 slowloris connections (a header line every second, never finishing);
  (d) the JWKS provider hanging while 20 concurrent ES256 requests arrive;
  (e) a normal client's req/s (GET /api/user/profile) without, then with 200 slowloris open.

For each it prints the p99/max stall of the /health loop, plus the RSS of the serving process
during the header attacks, and how long the hostile clients were kept. Loopback only; every loop
is bounded and stops by itself.

    .venv/bin/python bench/hostile_http.py [--seconds 12]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.fakes

from _support import JWT_SECRET, wait_healthy

from scribe.auth import mint_token
from tests.fakes.jwks import FakeJwks, new_key, serve_jwks

HEADER_BYTES = 100 * 2**20
CHUNK = b"a" * 2**20
SLOWLORIS = 200


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _spawn(data_dir: Path, port: int, jwks: FakeJwks) -> subprocess.Popen[bytes]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("SUPABASE_")}
    env.update(
        SCRIBE_DATA_DIR=str(data_dir),
        LOG_LEVEL="WARNING",
        SUPABASE_URL=jwks.base_url,
        SUPABASE_JWT_SECRET=JWT_SECRET,
        SCRIBE_RATE_LIMIT_PER_MINUTE="100000000",  # every client here is 127.0.0.1
    )
    scribe = Path(sys.executable).with_name("scribe")
    return subprocess.Popen(
        [str(scribe), "serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
    )


class HealthProbe:
    """``GET /health`` in a loop on one keep-alive connection; latencies per window."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.latencies: list[float] = []
        self.errors = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=60.0) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    response = await client.get("/health")
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies.append(time.perf_counter() - started)
                self.errors += 0 if ok else 1
                await asyncio.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()


async def _observe(base_url: str, attack: Awaitable[str], pid: int) -> str:
    """Run ``attack`` with a /health probe and an RSS sampler beside it; one line of figures."""
    probe = HealthProbe(base_url)
    process = psutil.Process(pid)
    rss_before = process.memory_info().rss / 2**20
    peak = [rss_before]
    sampling = True

    async def sample() -> None:
        while sampling:
            peak[0] = max(peak[0], process.memory_info().rss / 2**20)
            await asyncio.sleep(0.02)

    probe_task = asyncio.create_task(probe.run())
    sampler = asyncio.create_task(sample())
    started = time.perf_counter()
    try:
        detail = await attack
    finally:
        elapsed = time.perf_counter() - started
        probe.stop()
        sampling = False
        await probe_task
        await sampler
    values = sorted(probe.latencies)
    p99 = values[min(len(values) - 1, int(0.99 * len(values)))] * 1000
    return (
        f"/health p99 {p99:.1f} ms, max {values[-1] * 1000:.1f} ms over {len(values)} probes "
        f"({probe.errors} failed); RSS {rss_before:.0f} -> peak {peak[0]:.0f} MiB; "
        f"{elapsed:.1f} s; {detail}"
    )


async def _idle(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "no attack"


async def _read_answer(reader: asyncio.StreamReader) -> bytes:
    with contextlib.suppress(ConnectionError):
        return await reader.read(200)
    return b""


async def _big_header(port: int) -> tuple[str, float]:
    """Send a 100 MB header; return the server's status line and the seconds it took."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.create_task(_read_answer(reader))
    sent = 0
    with contextlib.suppress(ConnectionError):
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        while sent < HEADER_BYTES and not answer.done():
            writer.write(CHUNK)
            await writer.drain()
            sent += len(CHUNK)
    status = (await asyncio.wait_for(answer, 30)).split(b"\r\n")[0].decode() or "(closed)"
    writer.close()
    if sent >= HEADER_BYTES:
        status += " (whole 100 MB sent)"
    return status, time.perf_counter() - started


async def _headers_attack(port: int, parallel: int, seconds: float) -> str:
    """``parallel`` clients, each sending 100 MB headers one connection after another."""
    deadline = time.perf_counter() + seconds
    outcomes: dict[str, int] = {}
    slowest = 0.0

    async def attacker() -> None:
        nonlocal slowest
        while time.perf_counter() < deadline:
            status, took = await _big_header(port)
            outcomes[status] = outcomes.get(status, 0) + 1
            slowest = max(slowest, took)

    await asyncio.gather(*(attacker() for _ in range(parallel)))
    summary = ", ".join(f"{count} x {status}" for status, count in outcomes.items())
    return f"{summary}; slowest refusal {slowest:.2f} s"


async def _slowloris_one(port: int, deadline: float, closed_after: list[float]) -> None:
    """One slowloris connection: a header line a second until the server closes or time is up."""
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        closed_after.append(0.0)
        return
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        n = 0
        while time.perf_counter() < deadline:
            writer.write(f"X-Slow-{n}: 1\r\n".encode())
            await writer.drain()
            n += 1
            with contextlib.suppress(TimeoutError):
                if not await asyncio.wait_for(reader.read(1024), 1.0):
                    break  # the server closed
                break  # the server answered (408) and closes
        else:
            return  # still open at the deadline
        closed_after.append(time.perf_counter() - started)
    except ConnectionError:
        closed_after.append(time.perf_counter() - started)
    finally:
        writer.close()


async def _slowloris(port: int, seconds: float) -> str:
    deadline = time.perf_counter() + seconds
    closed_after: list[float] = []
    await asyncio.gather(*(_slowloris_one(port, deadline, closed_after) for _ in range(SLOWLORIS)))
    cut = sorted(closed_after)
    when = f", cut after {cut[0]:.1f}-{cut[-1]:.1f} s" if cut else ""
    return f"{len(cut)} of {SLOWLORIS} slowloris connections cut by the server{when}"


async def _jwks_hang(base_url: str, jwks: FakeJwks, count: int) -> str:
    jwks.hanging = True
    key = new_key("ES256")
    jwks.keys = [key, *jwks.keys]
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    tokens = [jwks.sign(key) for _ in range(count)]  # signed before the clock starts

    async def one(client: httpx.AsyncClient, token: str) -> None:
        started = time.perf_counter()
        response = await client.get(
            "/api/user/profile", headers={"Authorization": f"Bearer {token}"}
        )
        latencies.append(time.perf_counter() - started)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as client:
        await asyncio.gather(*(one(client, token) for token in tokens))
    jwks.release.set()
    jwks.hanging = False
    return (
        f"{count} concurrent ES256 requests while the JWKS hangs: statuses {statuses}, "
        f"slowest {max(latencies):.2f} s, JWKS fetches {jwks.requests}"
    )


async def _throughput(base_url: str, token: str, seconds: float, clients: int = 10) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    done = 0
    deadline = time.perf_counter() + seconds

    async def drive(client: httpx.AsyncClient) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            response = await client.get("/api/user/profile")
            if response.status_code != 200:
                raise SystemExit(f"profile answered {response.status_code}: {response.text}")
            done += 1

    async with contextlib.AsyncExitStack() as stack:
        pool = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30.0)
            )
            for _ in range(clients)
        ]
        started = time.perf_counter()
        await asyncio.gather(*(drive(client) for client in pool))
        return done / (time.perf_counter() - started)


async def _slowloris_forever(port: int, stop: asyncio.Event) -> None:
    """Keep SLOWLORIS slow connections open, reopening each one the server cuts."""

    async def holder() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                n = 0
                while not stop.is_set():
                    writer.write(f"X-Slow-{n}: 1\r\n".encode())
                    await writer.drain()
                    n += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(reader.read(1024), 1.0)
                        break  # cut by the server: reconnect
                writer.close()

    await asyncio.gather(*(holder() for _ in range(SLOWLORIS)))


async def _in_process(role: str, port: int, *values: float) -> str:
    """Run an attack in a separate process (so its client-side work does not delay the /health
    probe of this one); return the line it prints."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--role",
        role,
        "--port",
        str(port),
        *(str(value) for value in values),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"attacker {role} failed with {process.returncode}")
    return out.decode().strip()


async def _attacker(role: str, port: int, values: list[float]) -> None:
    """Body of ``--role``: run one attack and print its line."""
    if role == "headers":
        print(await _headers_attack(port, int(values[0]), values[1]))
    elif role == "slowloris":
        print(await _slowloris(port, values[0]))
    elif role == "slowloris-forever":
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(values[0], stop.set)
        await _slowloris_forever(port, stop)
        print("done")


async def main() -> None:
    """Run every attack and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="slowloris duration")
    parser.add_argument(
        "--attack-seconds", type=float, default=5.0, help="header attacks, repeated this long"
    )
    parser.add_argument("--load-seconds", type=float, default=8.0, help="each req/s window")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("values", nargs="*", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        await _attacker(args.role, args.port, args.values)
        return

    work = Path(tempfile.mkdtemp(prefix="scribe-hostile-"))
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    with serve_jwks() as jwks:
        server = _spawn(work / "data", port, jwks)
        try:
            await wait_healthy(base_url, server)
            token = mint_token(JWT_SECRET, email="bench@uni.edu", issuer=jwks.issuer)
            async with httpx.AsyncClient(base_url=base_url) as client:
                init = await client.post(
                    "/api/user/init", json={}, headers={"Authorization": f"Bearer {token}"}
                )
                assert init.status_code in (200, 201), init.text
            attacks = [
                ("baseline (no attack)", _idle(3.0)),
                ("(a) 1 x 100 MB header", _in_process("headers", port, 1, args.attack_seconds)),
                ("(b) 4 x 100 MB headers", _in_process("headers", port, 4, args.attack_seconds)),
                (f"(c) {SLOWLORIS} slowloris", _in_process("slowloris", port, args.seconds)),
                ("(d) JWKS hangs", _jwks_hang(base_url, jwks, 20)),
            ]
            for name, attack in attacks:
                print(f"{name}: {await _observe(base_url, attack, server.pid)}", flush=True)
            quiet = await _throughput(base_url, token, args.load_seconds)
            holders = asyncio.create_task(
                _in_process("slowloris-forever", port, args.load_seconds + 2)
            )
            await asyncio.sleep(1.0)  # let them connect
            loud = await _throughput(base_url, token, args.load_seconds)
            await holders
            print(
                f"(e) GET /api/user/profile, 10 clients: {quiet:.0f} req/s alone, {loud:.0f} req/s "
                f"with {SLOWLORIS} slowloris connections open ({loud / quiet:.0%})"
            )
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
