"""Throughput of no-op items through one and four worker processes (8 slots each), with WAL
bytes and SQL statements per completed item and database connections per process.
Target: >= 300 items/s for one process; <= 5 connections per process."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter

import asyncpg
from _support import (
    bench_database,
    enqueue,
    no_op_pipeline,
    open_pool,
    run_worker_main,
    spawn,
    worker_settings,
)

from scribe.db.pool import Pool, _init_connection, _keep_session
from scribe.emails.handler import email_handlers
from scribe.queue.consumer import Consumer

ITEMS_PER_PROCESS = 2000


async def _db_stats(pool: Pool) -> tuple[int, int]:
    row = await pool.fetchrow(
        "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn AS wal,"
        " (SELECT xact_commit + xact_rollback FROM pg_stat_database"
        "  WHERE datname = current_database()) AS xacts"
    )
    assert row is not None
    return int(row["wal"]), int(row["xacts"])


async def _peak_connections(pool: Pool, stop: asyncio.Event) -> int:
    peak = 0
    while not stop.is_set():
        count = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'scribe' AND pid <> pg_backend_pid()"
        )
        peak = max(peak, count)
        await asyncio.sleep(0.05)
    return peak


async def run(processes: int) -> None:
    items = ITEMS_PER_PROCESS * processes
    async with bench_database() as dsn:
        pool = await open_pool(dsn)
        try:
            await enqueue(pool, items)
            await asyncio.sleep(1.5)  # let statistics of the enqueue settle
            wal_before, xacts_before = await _db_stats(pool)
            stop = asyncio.Event()
            sampler = asyncio.create_task(_peak_connections(pool, stop))
            started = time.perf_counter()
            workers = [
                spawn("queue_throughput.py", dsn, drain=True, listen=True, poll=2.0)
                for _ in range(processes)
            ]
            for worker in workers:
                await asyncio.to_thread(worker.wait)
            wall = time.perf_counter() - started
            stop.set()
            peak = await sampler
            await asyncio.sleep(1.5)  # backends flush their statistics on exit
            wal_after, xacts_after = await _db_stats(pool)
            row = await pool.fetchrow(
                "SELECT count(*) FILTER (WHERE status = 'completed') AS done,"
                " extract(epoch FROM max(completed_at) - min(started_at)) AS busy"
                " FROM queue_items"
            )
            assert row is not None
            done, busy = int(row["done"]), float(row["busy"])
            # The driver's own sampling statements are counted too: a small overestimate.
            print(
                f"{processes} process(es) x 8 slots: {done}/{items} items in {busy:.2f}s "
                f"(first claim to last completion) = {done / busy:.0f} items/s; "
                f"wall incl. process start {wall:.2f}s"
            )
            print(
                f"  per completed item: WAL {(wal_after - wal_before) / done:.0f} bytes, "
                f"{(xacts_after - xacts_before) / done:.2f} transactions (pg_stat_database; "
                f"includes autovacuum and this driver's sampling)"
            )
            print(f"  peak database connections: {peak} total, {peak / processes:.1f} per process")
        finally:
            await pool.close()


async def count_statements(items: int = 2000) -> None:
    """Exact statements per item: one in-process consumer whose pool logs every query."""
    counts: Counter[str] = Counter()

    async def init(conn: asyncpg.Connection) -> None:
        await _init_connection(conn)
        conn.add_query_logger(lambda record: counts.update([record.query]))

    async with bench_database() as dsn:
        driver = await open_pool(dsn)
        await enqueue(driver, items)
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=3, init=init, reset=_keep_session
        )
        try:
            settings = worker_settings(dsn)
            consumer = Consumer(pool, settings, email_handlers(no_op_pipeline(), settings))
            started = time.perf_counter()
            await consumer.run(drain=True)
            elapsed = time.perf_counter() - started
        finally:
            await pool.close()
            await driver.close()
    print(
        f"in-process consumer, 8 slots: {items / elapsed:.0f} items/s; "
        f"{sum(counts.values()) / items:.2f} SQL statements per item (query logger: "
        f"3 checkpoints + 1 completion + amortised claims and heartbeats)"
    )


async def main() -> None:
    await count_statements()
    for processes in [int(arg) for arg in sys.argv[1:]] or (1, 4):
        await run(processes)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        run_worker_main("queue_throughput.py")
    else:
        asyncio.run(main())
