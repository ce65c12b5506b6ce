"""Hostile HTTP clients against a real ``scribe serve``: what do other users notice?

Starts ``scribe serve`` (on a fresh database of the bench server: embedded PostgreSQL, or
DATABASE_URL) on a free loopback port as when its port is exposed (no trusted proxy, so
127.0.0.1 is a client like any other), with a JWKS fake on loopback as its identity provider and
``ADMIN_EMAILS=kelvin@example.com``, and a ``GET /health`` loop on its own connection that
records every latency. Then, one after the other:

  (a) one client sending 100 MB headers, one connection after another, for 5 s;
  (b) four of them in parallel;
  (c) 200 slowloris connections (a header line every second, never finishing);
  (d) the JWKS provider hanging while 20 concurrent ES256 requests arrive;
  (e) a normal client's req/s (GET /api/user/profile) without, then with 200 slowloris open;
  (f) one 200 MB chunked trailer; (g) eight 100 MB trailers in parallel;
  (h) 1,100 idle sockets from 127.0.0.1 (kept open 30 s: each one cut is opened again) while
      a client on 127.0.0.2 makes requests;
  (i) 1,000 queue-stream opens by one signed-in user, the 127.0.0.2 client beside them;
  (j) 1,000 malformed chunked requests: the log lines and tracebacks they caused;
  (k) a 100-recipient batch of ~26 KB: its status and how many items were queued;
  (l) 12 clients that ask for the largest email list (1,000 emails of 20,000 characters) and
      never read it;
  (m) tokens that must not be admins (KELVIN SIGN address, unverified email, anonymous user);
  (n) an admin re-queue with ``failed_since`` 0001-01-01T00:00:00+14:00.

For each it prints the p99/max stall of the /health loop and the RSS of the serving process,
and the attack's own figures. Loopback only; every loop is bounded and stops by itself.
``--code DIR`` serves another checkout's code (e.g. an older main) for a before/after. The
server's log is kept in /tmp/scribe-hostile-server.log.

    .venv/bin/python bench/hostile_http.py [--seconds 12] [--only f,g,h] [--code DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.fakes

import _hostile_clients as clients
import asyncpg
import jwt
from _support import JWT_SECRET, bench_database, server_dsn, wait_healthy

from scribe.http.auth import mint_token
from tests.fakes.jwks import FakeJwks, new_key, serve_jwks

HEADER_BYTES = 100 * 2**20
CHUNK = b"a" * 2**20
SLOWLORIS = 200


# Well-behaved clients (the /health probe, the JWKS and throughput clients, set-up) come from
# their own loopback address, so that the per-address connection share the attacks run into
# (127.0.0.1, or 127.0.2.x for slowloris) is never theirs.
LEGIT_ADDRESS = "127.0.0.3"
SLOWLORIS_ADDRESSES = 4  # 200 slowloris connections from 127.0.2.1-4: within each one's share
_slow_sources = itertools.count()


def _client(**options: Any) -> httpx.AsyncClient:
    """An HTTP client on LEGIT_ADDRESS."""
    transport = httpx.AsyncHTTPTransport(local_address=LEGIT_ADDRESS)
    return httpx.AsyncClient(transport=transport, **options)


def _slow_source() -> tuple[str, int]:
    return (f"127.0.2.{1 + next(_slow_sources) % SLOWLORIS_ADDRESSES}", 0)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


ADMIN = "kelvin@example.com"
TOKEN_VARIABLE = "SCRIBE_BENCH_TOKEN"  # how an attacker process gets its bearer token
LAST_LOG = Path(tempfile.gettempdir()) / "scribe-hostile-server.log"  # the last run's server log


def _spawn(
    work: Path, dsn: str, port: int, jwks: FakeJwks, code: str | None
) -> subprocess.Popen[bytes]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("SUPABASE_")}
    env.update(
        DATABASE_URL=dsn,
        SCRIBE_DATA_DIR=str(work / "data"),
        LOG_LEVEL="INFO",
        SUPABASE_URL=jwks.base_url,
        SUPABASE_JWT_SECRET=JWT_SECRET,
        ADMIN_EMAILS=ADMIN,
        SCRIBE_RATE_LIMIT_PER_MINUTE="100000000",  # every client here is on loopback
        SCRIBE_CF_TRUSTED_PROXIES="",  # the port exposed: 127.0.0.1 is a client, not cloudflared
    )
    if code is not None:
        env["PYTHONPATH"] = str(code)
    scribe = Path(sys.executable).with_name("scribe")
    return subprocess.Popen(
        [str(scribe), "serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stderr=(work / "server.log").open("wb"),
    )


def _token(email: str, issuer: str, **claims: object) -> str:
    """A token as Supabase signs it, with ``claims`` added (or replaced)."""
    base = jwt.decode(
        mint_token(JWT_SECRET, email=email, issuer=issuer), options={"verify_signature": False}
    )
    return jwt.encode({**base, **claims}, JWT_SECRET, algorithm="HS256")


class HealthProbe:
    """``GET /health`` in a loop on one keep-alive connection; latencies per window."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.latencies: list[float] = []
        self.errors = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        async with _client(base_url=self.base_url, timeout=60.0) as client:
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
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=_slow_source())
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

    async with _client(base_url=base_url, timeout=60.0) as client:
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
                _client(base_url=base_url, headers=headers, timeout=30.0)
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
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=_slow_source()
                )
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


async def _in_process(role: str, port: int, *values: float, token: str = "") -> str:
    """Run an attack in a separate process (so its client-side work does not delay the /health
    probe of this one), signed in with ``token`` if given; return the line it prints."""
    env = {**os.environ, TOKEN_VARIABLE: token}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--role",
        role,
        "--port",
        str(port),
        *(str(value) for value in values),
        stdout=asyncio.subprocess.PIPE,
        env=env,
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
    elif role == "trailers":
        print(await clients.trailers(port, int(values[0]), int(values[1]) * 2**20))
    elif role == "idle":
        print(await clients.idle_sockets(port, int(values[0]), values[1]))
    elif role == "streams":
        token = os.environ[TOKEN_VARIABLE]
        print(await clients.stream_opens(port, token, int(values[0]), values[1]))
    elif role == "non-readers":
        token = os.environ[TOKEN_VARIABLE]
        path = "/api/email/?limit=1000"
        print(await clients.non_readers(port, token, int(values[0]), path, values[1]))
    elif role == "malformed":
        print(await clients.malformed_chunks(port, int(values[0])))
    elif role == "slowloris-forever":
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(values[0], stop.set)
        await _slowloris_forever(port, stop)
        print("done")


async def _seed_emails(dsn: str, email: str, count: int, chars: int) -> None:
    """``count`` emails of ``chars`` characters for the user of ``email`` (initialised)."""
    conn = await asyncpg.connect(dsn)
    try:
        user_id = await conn.fetchval("SELECT id FROM users WHERE email = $1", email)
        await conn.executemany(
            "INSERT INTO emails (id, user_id, recipient_name, recipient_interest, email_message,"
            " template_type) VALUES (gen_random_uuid(), $1, $2, 'bench', $3, 'general')",
            [(user_id, f"Recipient {n}", "x" * chars) for n in range(count)],
        )
    finally:
        await conn.close()


async def _batch(base_url: str, token: str) -> str:
    """(k): a 100-recipient batch of ~26 KB; its status and how many items it queued."""
    items = [
        {"recipient_name": f"Professor Number {n:03d}", "recipient_interest": "i" * 200}
        for n in range(100)
    ]
    template = "Dear {{name}}, I read about {{research}} and " + "would like to ask. " * 20
    body = {"items": items, "email_template": template}
    headers = {"Authorization": f"Bearer {token}"}
    async with _client(base_url=base_url, headers=headers, timeout=60) as client:
        response = await client.post("/api/queue/batch", json=body)
        queued = len((await client.get("/api/queue/")).json())
    size = len(response.request.content)
    return f"{size / 1000:.1f} KB batch: {response.status_code}, {queued} items queued"


async def _identities(base_url: str, issuer: str) -> str:
    """(m) and (n): who is an admin, and the edge date."""
    kelvin = "\u212aelvin@example.com"
    tokens = {
        "KELVIN SIGN address": _token(kelvin, issuer, email_verified=True),
        "unverified email": _token(ADMIN, issuer, email_verified=False),
        "anonymous user": _token(ADMIN, issuer, email_verified=True, is_anonymous=True),
        "the verified admin": _token(ADMIN, issuer, email_verified=True, is_anonymous=False),
    }
    parts = []
    async with _client(base_url=base_url, timeout=30) as client:
        for name, token in tokens.items():
            headers = {"Authorization": f"Bearer {token}"}
            await client.post("/api/user/init", json={}, headers=headers)
            answer = await client.get("/api/admin/overview", headers=headers)
            parts.append(f"{name}: admin overview {answer.status_code}")
        edge = await client.post(
            "/api/admin/queue/retry",
            json={"failed_since": "0001-01-01T00:00:00+14:00"},
            headers={"Authorization": f"Bearer {tokens['the verified admin']}"},
        )
    return "; ".join(parts) + f"; (n) failed_since 0001-01-01T00:00:00+14:00: {edge.status_code}"


def _log_lines(log: Path, since: int) -> tuple[int, int, int]:
    """Lines, tracebacks and bytes written to the server's log after byte ``since``."""
    with log.open("rb") as handle:
        handle.seek(since)
        text = handle.read()
    return text.count(b"\n"), text.count(b"Traceback"), len(text)


async def main() -> None:  # noqa: C901 - one scenario after another
    """Run every attack and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="slowloris duration")
    parser.add_argument(
        "--attack-seconds", type=float, default=5.0, help="header attacks, repeated this long"
    )
    parser.add_argument("--load-seconds", type=float, default=8.0, help="each req/s window")
    parser.add_argument("--only", default="", help="comma list of scenario letters (a-n)")
    parser.add_argument(
        "--code", help="serve this checkout's code instead (a PYTHONPATH: dirs joined by :)"
    )
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("values", nargs="*", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        await _attacker(args.role, args.port, args.values)
        return
    chosen = set(args.only.split(",")) if args.only else set("abcdefghijklmn")

    work = Path(tempfile.mkdtemp(prefix="scribe-hostile-"))
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    with serve_jwks() as jwks:
        async with bench_database(server_dsn()) as dsn:
            server = _spawn(work, dsn, port, jwks, args.code)
            try:
                await wait_healthy(base_url, server)
                print(f"serving {args.code or 'this checkout'} (pid {server.pid})", flush=True)
                token = mint_token(JWT_SECRET, email="bench@uni.edu", issuer=jwks.issuer)
                async with _client(base_url=base_url) as client:
                    for who in (token, _token("peer@uni.edu", jwks.issuer)):
                        init = await client.post(
                            "/api/user/init", json={}, headers={"Authorization": f"Bearer {who}"}
                        )
                        assert init.status_code in (200, 201), init.text
                peer_token = _token("peer@uni.edu", jwks.issuer)

                async def observe(name: str, attack: Awaitable[str]) -> None:
                    print(f"{name}: {await _observe(base_url, attack, server.pid)}", flush=True)

                def beside_peer(attack: Awaitable[str]) -> Awaitable[str]:
                    return clients.with_other_peer(base_url, peer_token, attack)  # type: ignore[arg-type]

                await observe("baseline (no attack)", _idle(3.0))
                if "a" in chosen:
                    await observe(
                        "(a) 1 x 100 MB header",
                        _in_process("headers", port, 1, args.attack_seconds),
                    )
                if "b" in chosen:
                    await observe(
                        "(b) 4 x 100 MB headers",
                        _in_process("headers", port, 4, args.attack_seconds),
                    )
                if "c" in chosen:
                    await observe(
                        f"(c) {SLOWLORIS} slowloris", _in_process("slowloris", port, args.seconds)
                    )
                if "d" in chosen:
                    await observe("(d) JWKS hangs", _jwks_hang(base_url, jwks, 20))
                if "e" in chosen:
                    quiet = await _throughput(base_url, token, args.load_seconds)
                    holders = asyncio.create_task(
                        _in_process("slowloris-forever", port, args.load_seconds + 2)
                    )
                    await asyncio.sleep(1.0)  # let them connect
                    loud = await _throughput(base_url, token, args.load_seconds)
                    await holders
                    print(
                        f"(e) GET /api/user/profile, 10 clients: {quiet:.0f} req/s alone, "
                        f"{loud:.0f} req/s with {SLOWLORIS} slowloris connections open "
                        f"({loud / quiet:.0%})",
                        flush=True,
                    )
                if "f" in chosen:
                    await observe("(f) 1 x 200 MB trailer", _in_process("trailers", port, 1, 200))
                if "g" in chosen:
                    await observe("(g) 8 x 100 MB trailers", _in_process("trailers", port, 8, 100))
                if "h" in chosen:
                    await observe(
                        "(h) 1,100 idle sockets",
                        beside_peer(_in_process("idle", port, 1100, 30)),
                    )
                if "i" in chosen:
                    await observe(
                        "(i) 1,000 stream opens",
                        beside_peer(_in_process("streams", port, 1000, 2.0, token=token)),
                    )
                if "j" in chosen:
                    mark = (work / "server.log").stat().st_size
                    detail = await _in_process("malformed", port, 1000)
                    await asyncio.sleep(1.0)  # what the server still writes about them
                    lines, tracebacks, size = _log_lines(work / "server.log", mark)
                    print(
                        f"(j) {detail}; the server wrote {lines} log lines ({size} bytes), "
                        f"{tracebacks} tracebacks",
                        flush=True,
                    )
                if "k" in chosen:
                    print(f"(k) {await _batch(base_url, peer_token)}", flush=True)
                if "l" in chosen:
                    await _seed_emails(dsn, "bench@uni.edu", 1000, 20_000)
                    await observe(
                        "(l) 12 non-reading clients of the largest list",
                        _in_process("non-readers", port, 12, 40.0, token=token),
                    )
                if "m" in chosen or "n" in chosen:
                    print(f"(m) {await _identities(base_url, jwks.issuer)}", flush=True)
            finally:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
                with contextlib.suppress(OSError):
                    shutil.copy(work / "server.log", LAST_LOG)
                shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
