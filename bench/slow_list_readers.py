"""Clients that ask for the largest email list and never read it: what do they cost the server?

Starts ``scribe serve --no-worker`` on a fresh database (DATABASE_URL's server or a private
embedded PostgreSQL) on a free loopback port, stores 1000 emails of 20,000 characters with about
34 KB of metadata each for one user (a 54 MB answer to ``GET /api/email/?limit=1000``, the
frontend's export), reads that answer once, then opens ``--clients`` connections that send the
same request with a 4 KiB receive buffer and never read. It prints the server's RSS before and
its peak while they stay open (sampled every 0.25 s for ``--seconds``).

    .venv/bin/python bench/slow_list_readers.py [--clients 12] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import asyncpg
import httpx
import psutil
from _support import JWT_SECRET, bench_database, wait_healthy

from scribe.http.auth import mint_token

EMAILS = 1000
TEXT = ("Dear Professor, I read your work with great interest. " * 400)[:20_000]
METADATA = json.dumps({"scraping_metadata": ["x" * 1000] * 34})
MB = 2**20


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _spawn(dsn: str, data_dir: str, port: int) -> subprocess.Popen[bytes]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("SUPABASE_")}
    env.update(
        DATABASE_URL=dsn,
        SCRIBE_DATA_DIR=data_dir,
        SUPABASE_JWT_SECRET=JWT_SECRET,
        LOG_LEVEL="WARNING",
        SCRIBE_RATE_LIMIT_PER_MINUTE="100000000",  # every client here is 127.0.0.1
    )
    scribe = Path(sys.executable).with_name("scribe")
    return subprocess.Popen(
        [str(scribe), "serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
    )


async def _store_emails(dsn: str, user_id: uuid.UUID) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            "INSERT INTO emails (id, user_id, recipient_name, recipient_interest, email_message,"
            " template_type, metadata, is_confident, displayed)"
            " VALUES ($1, $2, 'Prof. R', 'widgets', $3, 'research', $4::jsonb, true, true)",
            [(uuid.uuid4(), user_id, TEXT, METADATA) for _ in range(EMAILS)],
        )
    finally:
        await conn.close()


def _stalled_reader(port: int, token: str) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    request = (
        f"GET /api/email/?limit={EMAILS} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    )
    sock.sendall(request.encode())
    return sock


async def _peak_rss(process: psutil.Process, seconds: float) -> int:
    peak = process.memory_info().rss
    for _ in range(int(seconds / 0.25)):
        await asyncio.sleep(0.25)
        peak = max(peak, process.memory_info().rss)
    return peak


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    token = mint_token(JWT_SECRET, email="reader@uni.edu", issuer=None)
    headers = {"Authorization": f"Bearer {token}"}
    async with bench_database() as dsn:
        with tempfile.TemporaryDirectory() as data_dir:
            server = _spawn(dsn, data_dir, port)
            try:
                await wait_healthy(base_url, server)
                async with httpx.AsyncClient(base_url=base_url, timeout=120) as http:
                    init = await http.post("/api/user/init", json={}, headers=headers)
                    await _store_emails(dsn, uuid.UUID(init.json()["id"]))
                    whole = await http.get(f"/api/email/?limit={EMAILS}", headers=headers)
                count = len(whole.json())
                print(f"answer: {len(whole.content) / 1e6:.1f} MB, {count} emails")
                process = psutil.Process(server.pid)
                before = process.memory_info().rss
                readers = [_stalled_reader(port, token) for _ in range(args.clients)]
                peak = await _peak_rss(process, args.seconds)
                for reader in readers:
                    reader.close()
                print(
                    f"server RSS {before / MB:.0f} MB before, peak {peak / MB:.0f} MB with "
                    f"{args.clients} clients that never read: +{(peak - before) / MB:.0f} MB"
                )
            finally:
                server.terminate()
                server.wait(30)


if __name__ == "__main__":
    asyncio.run(main())
