"""Startup time, idle memory and GET /api/user/profile latency of a real ``scribe serve``.

Starts ``scribe serve`` as a subprocess on a free loopback port: with the embedded PostgreSQL in a
fresh temporary data dir, or against ``DATABASE_URL`` when it is set. Measures the time from spawn
to the first ``/health`` 200, the RSS of the serving process once idle, then p50/p99 latency of
``GET /api/user/profile`` from N concurrent clients (one httpx client and connection each).

    .venv/bin/python bench/api_latency.py [--requests 5000] [--concurrency 50]

The load generator shares the machine (and is itself Python), so the figures are an upper bound
on what the service alone costs; compare runs on the same machine, not across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from _support import wait_healthy

from scribe.http.auth import DEV_ISSUER, dev_secret, mint_token


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _spawn(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("SUPABASE_")}
    # Every client comes from 127.0.0.1: the per-client rate limit (600/min) would answer 429
    # within the first second of the load.
    env.update(
        SCRIBE_DATA_DIR=str(data_dir), LOG_LEVEL="WARNING", SCRIBE_RATE_LIMIT_PER_MINUTE="10000000"
    )
    scribe = Path(sys.executable).with_name("scribe")
    return subprocess.Popen(
        [str(scribe), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
    )


def _postgres_rss_mib(data_dir: Path) -> float | None:
    """RSS of the embedded postmaster and its children (shared memory counted per process)."""
    pid_file = data_dir / "postgres" / "postmaster.pid"
    if not pid_file.exists():
        return None
    postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
    processes = [postmaster, *postmaster.children(recursive=True)]
    return float(sum(p.memory_info().rss for p in processes)) / 2**20


async def _drive(client: httpx.AsyncClient, remaining: list[int], latencies: list[float]) -> None:
    """Send GET /api/user/profile on this client's connection until the shared budget is spent."""
    while remaining[0] > 0:
        remaining[0] -= 1
        started = time.perf_counter()
        response = await client.get("/api/user/profile")
        latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"GET /api/user/profile answered {response.status_code}")


async def _load(base_url: str, token: str, requests: int, concurrency: int) -> list[float]:
    headers = {"Authorization": f"Bearer {token}"}
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30.0)
            )
            for _ in range(concurrency)
        ]
        init = await clients[0].post("/api/user/init", json={"display_name": "Bench"})
        assert init.status_code in (200, 201), init.text
        # Warm up: every client opens its connection; the server fills its pool and caches.
        await asyncio.gather(*(_drive(client, [4], []) for client in clients))
        latencies: list[float] = []
        remaining = [requests]
        await asyncio.gather(*(_drive(client, remaining, latencies) for client in clients))
        return latencies


def _percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


async def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="scribe-bench-"))
    data_dir = work / "data"
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    database = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded PostgreSQL"
    server = _spawn(data_dir, port)
    try:
        startup = await wait_healthy(base_url, server)
        process = psutil.Process(server.pid)
        await asyncio.sleep(2.0)  # let startup garbage settle before reading idle memory
        idle_rss = process.memory_info().rss / 2**20
        postgres_rss = _postgres_rss_mib(data_dir)
        token = mint_token(dev_secret(data_dir), email="bench@uni.edu", issuer=DEV_ISSUER)
        cpu_before = process.cpu_times()
        wall = time.perf_counter()
        latencies = sorted(await _load(base_url, token, args.requests, args.concurrency))
        wall = time.perf_counter() - wall
        cpu_after = process.cpu_times()
        server_cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
        loaded_rss = process.memory_info().rss / 2**20
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)

    ms = 1000.0
    print(f"database:                       {database}")
    print(f"spawn -> /health 200:           {startup:.2f} s")
    print(f"idle RSS of the serving process: {idle_rss:.1f} MiB")
    if postgres_rss is not None:
        print(f"embedded PostgreSQL RSS (sum):  {postgres_rss:.1f} MiB")
    print(
        f"GET /api/user/profile, {args.concurrency} concurrent clients, "
        f"{len(latencies)} requests in {wall:.2f} s ({len(latencies) / wall:.0f} req/s)"
    )
    print(
        f"  p50 {_percentile(latencies, 0.50) * ms:.1f} ms  "
        f"p90 {_percentile(latencies, 0.90) * ms:.1f} ms  "
        f"p99 {_percentile(latencies, 0.99) * ms:.1f} ms  "
        f"max {latencies[-1] * ms:.1f} ms  mean {statistics.fmean(latencies) * ms:.1f} ms"
    )
    requests_total = len(latencies) + args.concurrency * 4 + 1  # with warm-up and init
    print(
        f"  serving process CPU: {server_cpu / requests_total * ms:.2f} ms per request "
        f"(machine: {os.cpu_count()} CPUs, shared with the load generator)"
    )
    print(f"RSS of the serving process after the load: {loaded_rss:.1f} MiB")


if __name__ == "__main__":
    asyncio.run(main())
