"""The queue engine when the database goes away during a fenced write: the outage is waited out
(past the lease too) and the write lands once; shutting down while it lasts gives the item up
after the lease time, writing nothing."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from scribe.db.pool import Pool, create_pool
from scribe.queue.job import Outcome, StopReason
from tests.engine_support import (
    UNITS,
    ScriptedHandler,
    add_item,
    claim,
    create_results_table,
    results,
    row,
    runner,
)
from tests.queue_support import create_user


@pytest.fixture
async def user(pool: Pool) -> uuid.UUID:
    await create_results_table(pool)
    return await create_user(pool)


@contextmanager
def write_retries() -> Iterator[asyncio.Event]:
    """An event set when the runner's write failed and it is about to try again."""
    retrying = asyncio.Event()

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "write failed" in record.getMessage():
                retrying.set()

    spy = Spy(logging.INFO)
    logger = logging.getLogger("scribe.queue.outage")
    logger.addHandler(spy)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield retrying
    finally:
        logger.removeHandler(spy)
        logger.setLevel(previous)


@asynccontextmanager
async def database_switch(pg_admin_dsn: str, database_url: str) -> AsyncIterator[Any]:
    """``away()`` makes the database refuse connections and cuts the open ones; ``back()`` lets
    it answer again (also on exit)."""
    name = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(pg_admin_dsn)

    class Switch:
        async def away(self) -> None:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )

        async def back(self) -> None:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    try:
        yield Switch()
    finally:
        await Switch().back()
        await admin.close()


@pytest.mark.parametrize(
    ("during", "lease", "outage"),
    [("b", 60.0, 0.0), ("c", 60.0, 0.0), ("c", 0.3, 1.0)],
    ids=["checkpoint", "completion", "completion-past-the-lease"],
)
async def test_a_fenced_write_waits_out_a_database_outage_and_lands_once(
    user: uuid.UUID, database_url: str, pg_admin_dsn: str, during: str, lease: float, outage: float
) -> None:
    setup = await create_pool(database_url, size=2, transaction_pooler=False)
    try:
        item = await add_item(setup, user)
    finally:
        await setup.close()
    worker_pool = await create_pool(database_url, size=2, transaction_pooler=False)
    handler = ScriptedHandler()
    async with database_switch(pg_admin_dsn, database_url) as switch:
        handler.actions[during] = switch.away
        with write_retries() as retrying:
            try:
                run = asyncio.create_task(
                    runner(worker_pool, handler, lease_seconds=lease).run(await claim(worker_pool))
                )
                await retrying.wait()  # the write failed at least once
                await asyncio.sleep(outage)  # the outage lasts (longer than the lease: 0.3 s)
                await switch.back()
                assert await run is Outcome.COMPLETED
            finally:
                await worker_pool.close()

    check = await create_pool(database_url, size=1, transaction_pooler=False)
    try:
        done = await row(check, item)
        # A completed item keeps no checkpoint: its step log holds what ran.
        assert done["status"] == "completed" and done["checkpoint"] is None
        steps = await check.fetch(
            "SELECT step FROM queue_item_history WHERE item_id = $1 AND kind = 'step'", item
        )
        assert sorted(e["step"] for e in steps) == list(UNITS)  # each write landed once
        [result] = await results(check)
        assert result["ran"] == list(UNITS)
    finally:
        await check.close()


async def test_a_write_gives_up_when_shutting_down_past_the_lease_with_the_database_away(
    user: uuid.UUID, database_url: str, pg_admin_dsn: str
) -> None:
    setup = await create_pool(database_url, size=2, transaction_pooler=False)
    try:
        item = await add_item(setup, user)
    finally:
        await setup.close()
    worker_pool = await create_pool(database_url, size=2, transaction_pooler=False)
    handler = ScriptedHandler()
    async with database_switch(pg_admin_dsn, database_url) as switch:
        try:
            job = await claim(worker_pool)

            async def away_then_shut_down() -> None:
                await switch.away()
                # After the step: the shutdown grace ran out while the checkpoint write waits.
                asyncio.get_running_loop().call_soon(job.request_stop, StopReason.SHUTDOWN)

            handler.actions["b"] = away_then_shut_down
            assert await runner(worker_pool, handler, lease_seconds=0.5).run(job) is Outcome.LOST
        finally:
            await worker_pool.close()

    check = await create_pool(database_url, size=1, transaction_pooler=False)
    try:
        left = await row(check, item)
        # Nothing after the outage began: b's checkpoint never landed, c never ran.
        assert left["status"] == "processing" and left["checkpoint"]["completed"] == ["a"]
        assert handler.runs == ["a", "b"]
        assert await results(check) == []
    finally:
        await check.close()
