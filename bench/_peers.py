"""The queues Scribe's is measured against (importable, does nothing when run): procrastinate,
pgqueuer and a bare ``SELECT … FOR UPDATE SKIP LOCKED`` claim + fenced update loop. Each has a
``prepare`` (schema and ``items`` no-op jobs, run by the driver) and a ``work`` (run in a worker
process: 8 concurrent slots until the queue is empty; returns the statements it sent)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from scribe.db.embedded import with_database

SLOTS = 8
POOL_SIZE = 4  # connections per worker process, as Scribe's pool
PGQUEUER_BATCH = 4  # pgqueuer wants max_concurrent_tasks >= 2 x batch size


@asynccontextmanager
async def empty_database(server: str) -> AsyncIterator[str]:
    """A fresh empty database on ``server`` for one peer, dropped afterwards."""
    name = f"scribe_peer_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(server, name)
    finally:
        admin = await asyncpg.connect(server)
        try:
            with contextlib.suppress(asyncpg.PostgresError):
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def counting_pool(dsn: str, counts: Counter[str]) -> asyncpg.Pool:
    """An asyncpg pool whose every statement is counted in ``counts``."""

    async def init(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda record: counts.update([record.query]))

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=POOL_SIZE, init=init)
    assert pool is not None
    return pool


# --- bare loop: the least any SKIP LOCKED queue can do per item ---

BARE_SCHEMA = """
CREATE TABLE bare_jobs (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status    text NOT NULL DEFAULT 'pending',
    locked_by text,
    claims    integer NOT NULL DEFAULT 0,
    payload   jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX bare_jobs_pending_idx ON bare_jobs (id) WHERE status = 'pending';
"""
BARE_CLAIM = """
WITH claimed AS MATERIALIZED (
    SELECT id FROM bare_jobs WHERE status = 'pending' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
)
UPDATE bare_jobs j SET status = 'processing', locked_by = $1, claims = j.claims + 1
FROM claimed WHERE j.id = claimed.id
RETURNING j.id, j.claims
"""
BARE_COMPLETE = """
UPDATE bare_jobs SET status = 'completed', locked_by = NULL
WHERE id = $1 AND status = 'processing' AND locked_by = $2 AND claims = $3
"""


async def prepare_bare(dsn: str, items: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(BARE_SCHEMA)
        await conn.execute(
            "INSERT INTO bare_jobs (payload) SELECT '{}' FROM generate_series(1, $1)", items
        )
        await conn.execute("ANALYZE bare_jobs")
    finally:
        await conn.close()


async def work_bare(dsn: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    pool = await counting_pool(dsn, counts)
    owner = f"bare-{uuid.uuid4().hex[:8]}"

    async def slot() -> None:
        while True:
            row = await pool.fetchrow(BARE_CLAIM, owner)
            if row is None:
                return
            await pool.execute(BARE_COMPLETE, row["id"], owner, row["claims"])

    try:
        await asyncio.gather(*(slot() for _ in range(SLOTS)))
    finally:
        await pool.close()
    return counts


# --- procrastinate (psycopg 3) ---


def _procrastinate_app(dsn: str, counts: Counter[str]) -> Any:
    import procrastinate
    import psycopg

    class CountingCursor(psycopg.AsyncCursor[Any]):
        async def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
            counts.update([str(query)[:80]])
            return await super().execute(query, *args, **kwargs)

    connector = procrastinate.PsycopgConnector(
        conninfo=dsn, min_size=1, max_size=POOL_SIZE, kwargs={"cursor_factory": CountingCursor}
    )
    app = procrastinate.App(connector=connector)

    @app.task(name="noop")
    async def noop() -> None:
        return None

    return app


async def prepare_procrastinate(dsn: str, items: int) -> None:
    app = _procrastinate_app(dsn, Counter())
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        task = app.tasks["noop"]
        for start in range(0, items, 500):
            await task.batch_defer_async(*({} for _ in range(min(500, items - start))))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ANALYZE procrastinate_jobs")
    finally:
        await conn.close()


async def work_procrastinate(dsn: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    app = _procrastinate_app(dsn, counts)
    async with app.open_async():
        await app.run_worker_async(
            concurrency=SLOTS, wait=False, install_signal_handlers=False, delete_jobs="never"
        )
    return counts


# --- pgqueuer (asyncpg) ---


async def prepare_pgqueuer(dsn: str, items: int) -> None:
    from pgqueuer.queries import Queries

    conn = await asyncpg.connect(dsn)
    try:
        queries = Queries.from_asyncpg_connection(conn)
        await queries.install()
        for start in range(0, items, 500):
            size = min(500, items - start)
            await queries.enqueue(["noop"] * size, [None] * size, [0] * size)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def work_pgqueuer(dsn: str) -> Counter[str]:
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode

    counts: Counter[str] = Counter()
    conn = await asyncpg.connect(dsn)  # pgqueuer LISTENs on its connection: a pool would not
    conn.add_query_logger(lambda record: counts.update([record.query]))
    try:
        manager = QueueManager(Queries.from_asyncpg_connection(conn))

        @manager.entrypoint("noop")
        async def noop(job: object) -> None:
            return None

        await manager.run(
            mode=QueueExecutionMode.drain,
            batch_size=PGQUEUER_BATCH,
            max_concurrent_tasks=SLOTS,
        )
    finally:
        await conn.close()
    return counts


@dataclass(frozen=True, slots=True)
class Peer:
    """One queue implementation under the same measurement."""

    name: str
    prepare: Callable[[str, int], Awaitable[None]]
    work: Callable[[str], Awaitable[Counter[str]]]


PEERS = {
    peer.name: peer
    for peer in (
        Peer("procrastinate", prepare_procrastinate, work_procrastinate),
        Peer("pgqueuer", prepare_pgqueuer, work_pgqueuer),
        Peer("bare loop", prepare_bare, work_bare),
    )
}
