"""Lean start: start time, idle memory, modules loaded and event-loop pauses of ``scribe serve``.

Starts the real ``scribe serve`` (no LOGFIRE_TOKEN, embedded PostgreSQL in a fresh temporary data
dir, or DATABASE_URL when set) on a free loopback port, in two configurations:

- offline: no provider keys (the offline LLM, no web search);
- configured as deployed: ANTHROPIC_API_KEY and EXA_API_KEY set, their base URLs on a closed
  local port (no call is made at start: the SDKs are loaded by the first call, not at start).

For each it prints spawn -> first ``/health`` 200 (the offline run's first start with a fresh
data dir, initdb; then ``--starts`` times with the data dir kept: the everyday restart) and the
serving process's CPU time until then (the figure that holds steady on a busy machine), the idle
RSS and PSS of the serving process alone (and of the embedded PostgreSQL separately), and the
heavy packages (provider SDKs, PDF, browser, extraction) loaded once ready. Then, under
``bench/_loop_probe.py`` (the offline ``scribe serve`` with a loop-pause probe and GC timing):
the modules loaded once ready, and the longest loop pause and the collections at idle
(``--idle`` s) and while ``--clients`` clients poll ``GET /api/queue/`` every ``--interval`` s
for ``--load`` s (each client a user with ``--items`` finished items, written by the service's
own consumer and offline provider).

    .venv/bin/python bench/lean_start.py [--starts 3] [--idle 20] [--load 30] [--clients 100]
                                         [--interval 0.5] [--items 3] [--no-freeze]

``--no-freeze`` skips the service's ``gc.freeze()`` after start-up, to show what it is worth.
The bench raises SCRIBE_RATE_LIMIT_PER_MINUTE and SCRIBE_HTTP_MAX_CONNECTIONS_PER_PEER (all
clients share one address) and the queue quotas it would otherwise trip; arXiv points at a closed
local port (no network).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _support import wait_healthy

from scribe.http.auth import DEV_ISSUER, dev_secret, mint_token
from tests.fakes.fixtures import GENERAL_TEMPLATE

BENCH = Path(__file__).resolve().parent
MIB = 2**20
PAUSE_TARGET = 0.050
_DROPPED_PREFIXES = ("SUPABASE_", "LOGFIRE_", "ANTHROPIC_", "OPENAI_", "EXA_", "PYDANTIC_")
_CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, no call leaves the machine
# Keys as deployed (fakes: no call is made at start), base URLs on the closed port.
CONFIGURED = {
    "ANTHROPIC_API_KEY": "sk-ant-bench",
    "ANTHROPIC_BASE_URL": _CLOSED,
    "EXA_API_KEY": "exa-bench",
    "EXA_BASE_URL": _CLOSED,
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _env(data_dir: Path, *, configured: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_PREFIXES)}
    if configured:
        env.update(CONFIGURED)
    env.update(
        SCRIBE_DATA_DIR=str(data_dir),
        LOG_LEVEL="ERROR",  # the configuration's warnings (no PDF hosts, no admins), once each
        SCRIBE_RATE_LIMIT_PER_MINUTE="1000000",
        SCRIBE_HTTP_MAX_CONNECTIONS_PER_PEER="1000",
        SCRIBE_QUEUE_DAILY_ITEMS="100000",
        ARXIV_API_URL="http://127.0.0.1:9/api/query",
        SCRIBE_ARXIV_MIN_INTERVAL_SECONDS="0",
    )
    return env


def _spawn(
    data_dir: Path,
    port: int,
    *,
    probe_out: Path | None = None,
    unfreeze: bool = False,
    configured: bool = False,
) -> subprocess.Popen[bytes]:
    env = _env(data_dir, configured=configured)
    address = ["--host", "127.0.0.1", "--port", str(port)]
    if probe_out is None:
        command = [str(Path(sys.executable).with_name("scribe")), "serve", *address]
    else:
        env["PROBE_OUT"] = str(probe_out)
        if unfreeze:
            env["PROBE_UNFREEZE"] = "1"
        command = [sys.executable, str(BENCH / "_loop_probe.py"), "serve", *address]
    # cwd: the data dir's parent, so no .env file of this checkout is read
    return subprocess.Popen(command, env=env, cwd=data_dir.parent, stdin=subprocess.DEVNULL)


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _memory(process: psutil.Process) -> tuple[float, float]:
    info = process.memory_full_info()
    return info.rss / MIB, info.pss / MIB


def _postgres_memory(data_dir: Path) -> tuple[float, float] | None:
    """RSS summed and PSS summed over the embedded postmaster and its children."""
    pid_file = data_dir / "postgres" / "postmaster.pid"
    if not pid_file.exists():
        return None
    postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
    rss = pss = 0
    for process in [postmaster, *postmaster.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            info = process.memory_full_info()
            rss, pss = rss + info.rss, pss + info.pss
    return rss / MIB, pss / MIB


async def _start_times(data_dir: Path, starts: int, *, configured: bool) -> None:
    label = "configured (Anthropic, Exa keys)" if configured else "offline (no provider keys)"
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    fresh = not data_dir.exists()
    runs = starts + 1 if fresh else starts  # the fresh start (initdb) comes first
    times: list[float] = []
    cpu_times: list[float] = []  # the serving process's own CPU time to ready: steady under load
    for index in range(runs):
        started = time.perf_counter()
        server = _spawn(data_dir, port, configured=configured)
        try:
            times.append(await wait_healthy(base_url, server, started))
            cpu = psutil.Process(server.pid).cpu_times()
            cpu_times.append(cpu.user + cpu.system)
            if index == runs - 1:
                await asyncio.sleep(3.0)  # startup garbage settles
                rss, pss = _memory(psutil.Process(server.pid))
                postgres = _postgres_memory(data_dir)
        finally:
            _stop(server)
    heavy = await _heavy_loaded(data_dir, configured=configured)
    print(f"== {label}")
    if fresh:
        print(f"spawn -> /health 200, fresh data dir (initdb):  {times.pop(0):.2f} s")
        cpu_times.pop(0)
    kept = ", ".join(f"{t:.2f}" for t in times)
    median = statistics.median(times)
    print(f"spawn -> /health 200, data dir kept:            median {median:.2f} s ({kept} s)")
    cpu = ", ".join(f"{t:.2f}" for t in cpu_times)
    print(
        f"  its CPU time (user + system) to ready:        median "
        f"{statistics.median(cpu_times):.2f} s ({cpu} s)"
    )
    print(f"idle serving process alone:                     RSS {rss:.1f} MiB  PSS {pss:.1f} MiB")
    if postgres is not None:
        print(
            f"embedded PostgreSQL (all its processes):        RSS summed {postgres[0]:.1f} MiB"
            f"  PSS {postgres[1]:.1f} MiB"
        )
    print(f"heavy packages loaded once ready:               {', '.join(heavy) or 'none'}")


async def _heavy_loaded(data_dir: Path, *, configured: bool) -> list[str]:
    """The heavy packages the service holds once ready (one start under the probe)."""
    port = _free_port()
    out = data_dir.parent / "probe-start.json"
    started = time.perf_counter()
    server = _spawn(data_dir, port, probe_out=out, configured=configured)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", server, started)
    finally:
        _stop(server)
    heavy: list[str] = json.loads(out.read_text())["heavy_loaded"]
    return heavy


@dataclass
class Poller:
    """One polling client: its own user, connection and latencies."""

    client: httpx.AsyncClient
    latencies: list[float]


async def _users(base_url: str, secret: str, count: int, items: int) -> list[httpx.AsyncClient]:
    clients = []
    for index in range(count):
        token = mint_token(secret, email=f"poller{index}@uni.edu", issuer=DEV_ISSUER)
        client = httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
        )
        clients.append(client)
        init = await client.post("/api/user/init", json={"display_name": f"Poller {index}"})
        assert init.status_code in (200, 201), init.text
        batch = [
            {"recipient_name": f"Dr. Person {index}-{n}", "recipient_interest": "graph theory"}
            for n in range(items)
        ]
        response = await client.post(
            "/api/queue/batch", json={"items": batch, "email_template": GENERAL_TEMPLATE}
        )
        assert response.status_code == 201, response.text
    return clients


async def _wait_processed(clients: list[httpx.AsyncClient]) -> None:
    deadline = time.monotonic() + 300
    for client in clients:
        while True:
            rows = (await client.get("/api/queue/")).json()
            if all(row["status"] in ("completed", "failed") for row in rows):
                break
            if time.monotonic() > deadline:
                raise SystemExit("the consumer did not finish the setup batches in time")
            await asyncio.sleep(0.2)


async def _poll(poller: Poller, until: float, interval: float) -> None:
    while time.monotonic() < until:
        started = time.perf_counter()
        response = await poller.client.get("/api/queue/")
        poller.latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"GET /api/queue/ answered {response.status_code}")
        await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))


def _phase(report: dict[str, object], start: float, end: float, label: str) -> None:
    lags = [late for when, late in report["lags"] if start <= when <= end]  # type: ignore[attr-defined]
    collections = [c for c in report["collections"] if start <= c[0] <= end]  # type: ignore[attr-defined]
    full = [seconds for _, generation, seconds in collections if generation == 2]
    worst = max(lags, default=0.0)
    over = sum(1 for late in lags if late > PAUSE_TARGET)
    print(
        f"{label:<34} longest loop pause {worst * 1000:6.1f} ms, pauses > 50 ms: {over}; "
        f"collections gen0/1/2: "
        + "/".join(str(sum(1 for c in collections if c[1] == g)) for g in (0, 1, 2))
        + (f", longest full collection {max(full) * 1000:.1f} ms" if full else "")
    )


async def _loop_pauses(data_dir: Path, args: argparse.Namespace) -> None:
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    out = data_dir.parent / "probe.json"
    started = time.perf_counter()
    server = _spawn(data_dir, port, probe_out=out, unfreeze=args.no_freeze)
    pollers: list[Poller] = []
    try:
        await wait_healthy(base_url, server, started)
        process = psutil.Process(server.pid)
        idle_start = time.monotonic()
        await asyncio.sleep(args.idle)
        idle_end = time.monotonic()
        clients = await _users(base_url, dev_secret(data_dir), args.clients, args.items)
        pollers = [Poller(client, []) for client in clients]
        await _wait_processed(clients)
        load_start = time.monotonic()
        await asyncio.gather(*(_poll(p, load_start + args.load, args.interval) for p in pollers))
        load_end = time.monotonic()
        rss_after, pss_after = _memory(process)
    finally:
        for poller in pollers:
            await poller.client.aclose()
        _stop(server)
    report = json.loads(out.read_text())
    print(f"modules loaded once ready:                      {report['modules']}")
    heavy = ", ".join(report["heavy_loaded"]) or "none"
    print(f"heavy packages loaded once ready:               {heavy}")
    skipped = " (--no-freeze: the service's freeze skipped)" if args.no_freeze else ""
    print(f"objects in gc's permanent generation:           {report['frozen']}{skipped}")
    _phase(report, idle_start, idle_end, f"idle, {args.idle:.0f} s:")
    latencies = sorted(latency for p in pollers for latency in p.latencies)
    _phase(
        report,
        load_start,
        load_end,
        f"{args.clients} clients polling, {args.load:.0f} s:",
    )
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    print(
        f"  GET /api/queue/ ({args.items} items each): {len(latencies)} requests, "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1] * 1000:.1f} ms"
    )
    print(
        f"serving process after the load:                 RSS {rss_after:.1f} MiB"
        f"  PSS {pss_after:.1f} MiB"
    )


async def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--load", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--items", type=int, default=3)
    parser.add_argument("--no-freeze", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="scribe-lean-"))
    data_dir = work / "data"
    database = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded PostgreSQL"
    print(f"database: {database}; no LOGFIRE_TOKEN; {os.cpu_count()} CPUs")
    try:
        await _start_times(data_dir, args.starts, configured=False)
        await _start_times(data_dir, args.starts, configured=True)
        print("== offline, under the loop probe")
        await _loop_pauses(data_dir, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
