"""Cost per no-op queue item, side by side in one run on one PostgreSQL: Scribe's engine (one
worker process x 8 slots), procrastinate, pgqueuer and a bare SKIP LOCKED claim + fenced update
loop (bench/_peers.py), each in its own database and its own worker process. Per item: jobs/s,
WAL bytes, CPU (worker process + database server) and statements sent.

Scribe runs twice: "scribe" is the engine with a no-op job kind (four instant units, no state,
no result: the peers' no-op jobs are the same), "scribe email" is the email job with four
instant steps, which checkpoints after each step and writes its email with the completion.

Then the claim's cost from 100 to 100,000 pending items spread over 1,000 users, and after most
of them drained.
Last, Scribe alone with 1 and 4 worker processes over one backlog, and the database
connections each process holds (target: <= 5).

Targets: Scribe >= procrastinate and >= 25 % of the bare loop in jobs/s;
<= 2 kB WAL per item; claim cost within 2x from 100 to 100,000 pending items.

    .venv/bin/python bench/queue_throughput.py [processes ...]   (the Scribe-alone runs; 1 4)
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import asyncpg
import psutil
from _peers import PEERS, empty_database
from _support import (
    NO_OP_KIND,
    REPO,
    bench_database,
    enqueue,
    no_op_pipeline,
    open_pool,
    run_no_op_worker,
    run_worker_main,
    server_dsn,
    spawn,
    worker_settings,
)

from scribe.db import queue_items, users
from scribe.db.queries import sql
from scribe.db.queue_items import NewItem

ITEMS = 4000
ITEMS_PER_PROCESS = 2000
USERS = 10  # the throughput run's items are spread over these users (batches of 100)
CLAIM_USERS = 1000
CLAIM_LEVELS = (100, 1_000, 10_000, 100_000)
CLAIM_SAMPLES = 50
DRAIN_BITE = 1000
ROUNDS = 2  # every system runs this many times, alternating; the best run counts (shared box)
SCRIBE = "scribe"  # the engine, no-op job kind
SCRIBE_EMAIL = "scribe email"  # the email job, instant steps


@dataclass(frozen=True, slots=True)
class Figures:
    """One system's run: items, the worker's wall and CPU seconds, server CPU, WAL, statements."""

    name: str
    items: int
    seconds: float
    worker_cpu: float
    db_cpu: float | None
    wal: int
    statements: int

    def line(self, bare: Figures | None) -> str:
        rate = self.items / self.seconds
        bare_rate = None if bare is None else bare.items / bare.seconds
        share = "" if bare_rate is None else f" ({100 * rate / bare_rate:.0f} % of bare)"
        db = "n/a" if self.db_cpu is None else f"{1000 * self.db_cpu / self.items:.2f}"
        return (
            f"  {self.name:<14} {rate:>6.0f} jobs/s{share:<17} WAL {self.wal / self.items:>6.0f} B"
            f"  CPU worker {1000 * self.worker_cpu / self.items:.2f} ms + db {db} ms"
            f"  statements {self.statements / self.items:.2f}"
        )


class ServerCpu:
    """CPU seconds spent by the PostgreSQL server (postmaster, its live children, and children
    that exited meanwhile) when it runs on this machine; None when it does not."""

    def __init__(self, backend_pid: int) -> None:
        try:
            self._postmaster: psutil.Process | None = psutil.Process(backend_pid).parent()
        except psutil.Error:
            self._postmaster = None

    def sample(self) -> tuple[float, dict[int, float]] | None:
        if self._postmaster is None:
            return None
        times = self._postmaster.cpu_times()
        reaped = times.user + times.system + times.children_user + times.children_system
        live = {}
        for child in self._postmaster.children():
            try:
                child_times = child.cpu_times()
            except psutil.Error:
                continue
            live[child.pid] = child_times.user + child_times.system
        return reaped, live

    @staticmethod
    def spent(
        before: tuple[float, dict[int, float]] | None, after: tuple[float, dict[int, float]] | None
    ) -> float | None:
        if before is None or after is None:
            return None
        live = sum(cpu - before[1].get(pid, 0.0) for pid, cpu in after[1].items())
        exited = sum(cpu for pid, cpu in before[1].items() if pid not in after[1])
        return after[0] - before[0] + live - exited


async def _checkpoint(dsn: str) -> None:
    """A checkpoint before each system enqueues: its run then writes no full-page images of the
    pages its enqueue wrote (unless a timed checkpoint falls inside the run), for every system
    alike."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def _wal(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))


async def measure(name: str, dsn: str, items: int) -> Figures:
    """Run one system's worker process over its prepared database and take its figures."""
    conn = await asyncpg.connect(dsn)
    try:
        cpu = ServerCpu(await conn.fetchval("SELECT pg_backend_pid()"))
        wal_before, cpu_before = await _wal(conn), cpu.sample()
        worker = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(REPO / "bench" / "queue_throughput.py"), "--worker", name, dsn],
            capture_output=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=True,
        )
        wal_after, cpu_after = await _wal(conn), cpu.sample()
    finally:
        await conn.close()
    report = json.loads(worker.stdout.decode().strip().splitlines()[-1])
    return Figures(
        name,
        items,
        report["seconds"],
        report["cpu"],
        ServerCpu.spent(cpu_before, cpu_after),
        wal_after - wal_before,
        report["statements"],
    )


async def compare(items: int) -> None:
    """Every system over ``items`` no-op jobs, one after the other on the same server, ROUNDS
    times; each system's fastest run is shown."""
    server = server_dsn()
    runs: dict[str, list[Figures]] = {}
    for _ in range(ROUNDS):
        for result in await _round(server, items):
            runs.setdefault(result.name, []).append(result)
    results = [min(figures, key=lambda run: run.seconds) for figures in runs.values()]
    bare = next(result for result in results if result.name == "bare loop")
    print(
        f"{items} no-op jobs, 1 worker process x 8 slots each, same PostgreSQL, one run "
        f"(best of {ROUNDS} alternating rounds):"
    )
    for result in results:
        print(result.line(bare))


async def _round(server: str, items: int) -> list[Figures]:
    results = []
    for name, kind in ((SCRIBE, NO_OP_KIND), (SCRIBE_EMAIL, queue_items.DEFAULT_KIND)):
        async with bench_database(server) as dsn:
            await _checkpoint(dsn)
            pool = await open_pool(dsn)
            try:
                await enqueue(pool, items, USERS, kind)
                await pool.execute("ANALYZE")
            finally:
                await pool.close()
            results.append(await measure(name, dsn, items))
    for peer in PEERS.values():
        async with empty_database(server) as dsn:
            await _checkpoint(dsn)
            await peer.prepare(dsn, items)
            results.append(await measure(peer.name, dsn, items))
    return results


async def _peak_connections(pool: asyncpg.Pool, stop: asyncio.Event) -> int:
    peak = 0
    while not stop.is_set():
        count = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'scribe' AND pid <> pg_backend_pid()"
        )
        peak = max(peak, count)
        await asyncio.sleep(0.05)
    return peak


async def processes_run(processes: int) -> None:
    """Scribe alone: ``processes`` worker processes x 8 slots over one backlog, and the database
    connections each holds (target: <= 5)."""
    items = ITEMS_PER_PROCESS * processes
    async with bench_database() as dsn:
        pool = await open_pool(dsn)
        try:
            await enqueue(pool, items)
            await pool.execute("ANALYZE")
            stop = asyncio.Event()
            sampler = asyncio.create_task(_peak_connections(pool, stop))
            workers = [
                spawn("queue_throughput.py", dsn, drain=True, listen=True, poll=2.0)
                for _ in range(processes)
            ]
            for worker in workers:
                await asyncio.to_thread(worker.wait)
            stop.set()
            peak = await sampler
            row = await pool.fetchrow(
                "SELECT count(*) FILTER (WHERE status = 'completed') AS done,"
                " extract(epoch FROM max(completed_at) - min(started_at)) AS busy"
                " FROM queue_items"
            )
            assert row is not None
            done, busy = int(row["done"]), float(row["busy"])
            print(
                f"{processes} Scribe process(es) x 8 slots: {done}/{items} items in {busy:.2f}s "
                f"(first claim to last completion) = {done / busy:.0f} items/s; peak database "
                f"connections {peak / processes:.1f} per process"
            )
        finally:
            await pool.close()


async def claim_cost() -> None:
    """Milliseconds per claim call (8 items) at growing backlogs over 1,000 users; each sample
    is rolled back, so the backlog stays as it is (its dead row versions accumulate, as they do
    while a backlog drains)."""
    async with bench_database() as dsn:
        pool = await open_pool(dsn)
        try:
            owners = [uuid.uuid4() for _ in range(CLAIM_USERS)]
            for owner in owners:
                await users.create(pool, owner, f"{owner.hex[:10]}@bench.example", None)
            figures = []
            pending = 0
            for level in CLAIM_LEVELS:
                # The new items spread evenly over every user (one request per user).
                per_user = max(1, (level - pending) // CLAIM_USERS)
                turn = 0
                while pending < level:
                    size = min(per_user, level - pending)
                    await queue_items.enqueue(
                        pool,
                        owners[turn % CLAIM_USERS],
                        [NewItem("Bench Recipient", "benchmarks")] * size,
                        "Dear {{name}}",
                        max_attempts=3,
                    )
                    pending, turn = pending + size, turn + 1
                await pool.execute("ANALYZE queue_items")
                figures.append((f"{level} pending", await _claim_ms(pool)))
            # Drain 90 % the way workers do (claim in fair order, then complete), in big bites.
            for _ in range(pending * 9 // 10 // DRAIN_BITE):
                claimed = await queue_items.claim(
                    pool,
                    "bench",
                    DRAIN_BITE,
                    lease_seconds=60,
                    first_steps={"email": "template_parser"},
                )
                await pool.execute(
                    "UPDATE queue_items SET status = 'completed', completed_at = now(),"
                    " lease_expires_at = NULL WHERE id = ANY($1)",
                    [item.id for item in claimed],
                )
            left = pending // 10
            figures.append((f"{left} pending after draining 90 %", await _claim_ms(pool)))
            # The drained items' entries stay at the head of the index until (auto)vacuum.
            await pool.execute("VACUUM queue_items")
            figures.append((f"{left} pending, drained, after VACUUM", await _claim_ms(pool)))
        finally:
            await pool.close()
    base = figures[0][1][0]
    print(f"claim cost (8 items per call, mean of {CLAIM_SAMPLES} calls each, rolled back):")
    for label, (server, trip) in figures:
        print(
            f"  {label:<38} {server:.3f} ms in the server ({server / base:.1f}x the 100-item "
            f"figure); {trip:.3f} ms round trip"
        )


async def _claim_ms(pool: asyncpg.Pool) -> tuple[float, float]:
    """Mean milliseconds per claim call: executing in the server (EXPLAIN ANALYZE, which runs
    it), and the whole round trip from here."""
    statement = sql("claim_queue_items")
    args = ("bench", 8, 60.0, "template_parser")
    server = trip = 0.0
    async with pool.acquire() as conn:
        for _ in range(CLAIM_SAMPLES):
            transaction = conn.transaction()
            await transaction.start()
            started = time.perf_counter()
            await conn.fetch(statement, *args)
            trip += time.perf_counter() - started
            await transaction.rollback()
            transaction = conn.transaction()
            await transaction.start()
            plan = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, *args)
            plan = json.loads(plan) if isinstance(plan, str) else plan  # the pool decodes json
            server += plan[0]["Execution Time"] / 1000
            await transaction.rollback()
    return 1000 * server / CLAIM_SAMPLES, 1000 * trip / CLAIM_SAMPLES


def _worker(name: str, dsn: str) -> None:
    """Worker process: work the queue empty; print seconds, CPU seconds and statements as JSON."""
    counts: Counter[str] = Counter()
    if name in (SCRIBE, SCRIBE_EMAIL):
        from scribe.db import pool as pool_module
        from scribe.worker import run_worker

        init = pool_module._init_connection

        async def counting_init(conn: asyncpg.Connection) -> None:
            await init(conn)
            conn.add_query_logger(lambda record: counts.update([record.query]))

        pool_module._init_connection = counting_init
        settings = worker_settings(dsn, scribe_listen=True, scribe_poll_seconds=2.0)

        async def work() -> None:
            if name == SCRIBE:
                await run_no_op_worker(settings)
            else:
                await run_worker(settings, lambda deps: no_op_pipeline(), drain=True)

    else:

        async def work() -> None:
            counts.update(await PEERS[name].work(dsn))

    cpu, started = time.process_time(), time.perf_counter()
    asyncio.run(work())
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu": cpu, "statements": sum(counts.values())}))


async def main() -> None:
    await compare(ITEMS)
    await claim_cost()
    for processes in [int(arg) for arg in sys.argv[1:]] or (1, 4):
        await processes_run(processes)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        if len(sys.argv) == 4:
            _worker(sys.argv[2], sys.argv[3])
        else:
            run_worker_main("queue_throughput.py")  # a processes_run worker (_support.spawn)
    else:
        asyncio.run(main())
