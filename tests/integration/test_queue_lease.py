"""One lease heartbeat (scribe/queue/lease.py) against the real database, and how a running job
takes a stop request (scribe/queue/job.py): renewed, cancelled, lost, finished and the database
away."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from scribe.db import queue_items
from scribe.db.pool import Pool
from scribe.errors import DatabaseUnavailable
from scribe.queue.job import Job, Outcome, StopReason
from scribe.queue.lease import renew_once
from scribe.queue.outage import QueueOutage
from tests.queue_support import claimed_item, create_user, enqueue, item_rows

OWNER = "lease-test"
LEASE_SECONDS = 600.0


async def _in_step() -> Outcome:
    await asyncio.sleep(3600)
    return Outcome.COMPLETED


@pytest.fixture
async def jobs(pool: Pool) -> AsyncIterator[dict[str, Job]]:
    """Four claimed items, each a job inside a step: kept, cancelled, lost and finished."""
    user = await create_user(pool)
    await enqueue(pool, user, ["x"] * 4)
    claimed = await queue_items.claim(
        pool, OWNER, 4, lease_seconds=60, first_steps={"email": "template_parser"}
    )
    made = {}
    for name, item in zip(("kept", "cancelled", "lost", "finished"), claimed, strict=True):
        job = Job(item, item.fence(OWNER), task=asyncio.create_task(_in_step()), in_step=True)
        made[name] = job
    finished = made["finished"].task
    assert finished is not None
    finished.cancel()
    with pytest.raises(asyncio.CancelledError):
        await finished
    yield made
    for job in made.values():
        assert job.task is not None
        job.task.cancel()


async def test_a_heartbeat_renews_live_jobs_and_stops_the_cancelled_and_the_lost(
    pool: Pool, jobs: dict[str, Job]
) -> None:
    await pool.execute(
        "UPDATE queue_items SET cancel_requested_at = now() WHERE id = $1",
        jobs["cancelled"].item.id,
    )
    await pool.execute(
        "UPDATE queue_items SET locked_by = 'someone else' WHERE id = $1", jobs["lost"].item.id
    )
    before = await item_rows(pool)
    await renew_once(pool, OWNER, {job.fence.key: job for job in jobs.values()}, LEASE_SECONDS)
    await asyncio.sleep(0)  # let the cancelled tasks see it

    after = await item_rows(pool)
    reasons = {name: job.stop_reason for name, job in jobs.items()}
    assert reasons == {
        "kept": None,
        "cancelled": StopReason.CANCELLED,
        "lost": StopReason.LEASE_LOST,
        "finished": None,
    }
    kept, cancelled = jobs["kept"].task, jobs["cancelled"].task
    assert kept is not None and cancelled is not None
    assert cancelled.cancelling() == 1 and not kept.cancelling()
    for name in ("kept", "cancelled"):
        item = jobs[name].item.id
        assert after[item]["lease_expires_at"] > before[item]["lease_expires_at"]
    # A finished job is not renewed (its lease runs out unless it was completed meanwhile).
    finished = jobs["finished"].item.id
    assert after[finished]["lease_expires_at"] == before[finished]["lease_expires_at"]


async def test_with_the_database_away_a_heartbeat_logs_once_and_stops_nothing(
    pool: Pool,
    jobs: dict[str, Job],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def away(*args: object, **kwargs: object) -> None:
        raise DatabaseUnavailable("connection refused")

    monkeypatch.setattr(queue_items, "renew_leases", away)
    outage = QueueOutage()
    running = {job.fence.key: job for job in jobs.values()}
    with caplog.at_level(logging.WARNING, logger="scribe.queue.outage"):
        for _ in range(3):
            await renew_once(pool, OWNER, running, 60, outage)
    [record] = caplog.records
    assert record.getMessage().startswith("queue lease renewal failed: connection refused;")
    assert {job.stop_reason for job in jobs.values()} == {None}
    assert outage.tries == {"lease renewal": 3}


async def test_a_stop_request_cancels_a_running_step_once_and_the_strongest_reason_wins() -> None:
    item = claimed_item()
    job = Job(item, item.fence(OWNER), task=asyncio.create_task(_in_step()), in_step=True)
    assert job.task is not None
    job.request_stop(StopReason.CANCELLED)
    job.request_stop(StopReason.CANCELLED)  # the same reason again: nothing more
    job.request_stop(StopReason.SHUTDOWN)  # a weaker one: ignored
    assert (job.stop_reason, job.task.cancelling()) == (StopReason.CANCELLED, 1)
    job.request_stop(StopReason.LEASE_LOST)
    assert (job.stop_reason, job.task.cancelling()) == (StopReason.LEASE_LOST, 2)
    job.task.cancel()
    between = Job(item, item.fence(OWNER), task=asyncio.create_task(_in_step()))
    between.request_stop(StopReason.SHUTDOWN)  # between steps: noticed at the next boundary
    assert between.task is not None and between.task.cancelling() == 0
    assert between.stop_reason is StopReason.SHUTDOWN
    between.task.cancel()
