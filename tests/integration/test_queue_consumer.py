"""The consumer in-process against a real database: completion, retries, timeouts, resume,
cancel, shutdown, wake-ups."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from scribe.db import queue_items
from scribe.db.pool import Pool
from scribe.emails.handler import email_handlers
from scribe.errors import ConsumerCrashed, DatabaseUnavailable
from scribe.queue import consumer as consumer_module
from scribe.queue.consumer import Consumer
from scribe.queue.job import Outcome
from scribe.queue.listener import Listener, running_listener
from scribe.queue.outage import QueueOutage
from scribe.settings import Settings
from scribe.steps import STEP_NAMES
from tests.fakes.steps import StepLog, behaviour, deterministic_pipeline
from tests.queue_support import create_user, email_count, enqueue, item_rows, wait_until

FAST = {
    "scribe_poll_seconds": 0.2,
    "scribe_retry_base_seconds": 0.0,
    "scribe_lease_seconds": 2.0,
    "scribe_reaper_seconds": 0.2,
}


@pytest.fixture
def step_log(tmp_path: Path) -> StepLog:
    directory = tmp_path / "steps"
    directory.mkdir()
    return StepLog(directory)


@pytest.fixture
def consumer_for(
    pool: Pool, make_settings: Callable[..., Settings], step_log: StepLog
) -> Callable[..., Consumer]:
    def make(listener: Listener | None = None, **overrides: object) -> Consumer:
        settings = make_settings(**{**FAST, **overrides})
        handlers = email_handlers(deterministic_pipeline(step_log.directory), settings)
        return Consumer(pool, settings, handlers, listener=listener)

    return make


@contextlib.asynccontextmanager
async def running(consumer: Consumer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(consumer.run(), name="test-consumer")
    try:
        yield task
    finally:
        consumer.stop()
        await task


async def test_drain_completes_each_item_once_with_email_and_count(
    pool: Pool, consumer_for: Callable[..., Consumer], step_log: StepLog
) -> None:
    ada, bob = await create_user(pool), await create_user(pool)
    ids = await enqueue(pool, ada, ["graph theory"] * 3) + await enqueue(pool, bob, ["optics"])
    consumer = consumer_for()
    await consumer.run(drain=True)

    rows = await item_rows(pool, ids)
    assert {row["status"] for row in rows.values()} == {"completed"}
    assert all(row["claims"] == 1 and row["email_id"] is not None for row in rows.values())
    assert {row["attempts"] for row in rows.values()} == {0}
    assert all(set(row["step_timings"]) == set(STEP_NAMES) for row in rows.values())
    emails = await pool.fetch("SELECT * FROM emails ORDER BY created_at")
    assert {e["queue_item_id"] for e in emails} == set(ids)
    assert {e["id"] for e in emails} == {row["email_id"] for row in rows.values()}
    assert set(emails[0]["metadata"]["step_timings"]) == set(STEP_NAMES)
    rows_by_user = await pool.fetch("SELECT id, generation_count FROM users")
    counts = {row["id"]: row["generation_count"] for row in rows_by_user}
    assert counts == {ada: 3, bob: 1}
    assert set(step_log.starts().values()) == {1}


async def test_transient_failure_retries_and_resumes_after_last_checkpoint(
    pool: Pool, consumer_for: Callable[..., Consumer], step_log: StepLog
) -> None:
    user = await create_user(pool)
    [item] = await enqueue(pool, user, [behaviour(fail_once={"arxiv_helper": "transient"})])
    await consumer_for().run(drain=True)

    row = (await item_rows(pool, [item]))[item]
    assert (row["status"], row["claims"], row["attempts"]) == ("completed", 2, 1)
    assert row["error_message"] is None
    starts = step_log.starts(item)
    assert starts[(str(item), "template_parser")] == 1
    assert starts[(str(item), "web_scraper")] == 1
    assert starts[(str(item), "arxiv_helper")] == 2


async def test_permanent_failure_fails_at_once_with_step_and_truncated_message(
    pool: Pool, consumer_for: Callable[..., Consumer]
) -> None:
    user = await create_user(pool)
    [item] = await enqueue(
        pool, user, [behaviour(fail={"web_scraper": "permanent"}, fail_message="x" * 5000)]
    )
    await consumer_for().run(drain=True)

    row = (await item_rows(pool, [item]))[item]
    assert (row["status"], row["attempts"], row["failed_step"]) == ("failed", 1, "web_scraper")
    assert len(row["error_message"]) == 1000
    assert await email_count(pool) == 0


async def test_transient_failures_fail_after_max_attempts(
    pool: Pool, consumer_for: Callable[..., Consumer]
) -> None:
    user = await create_user(pool)
    [item] = await enqueue(
        pool, user, [behaviour(fail={"email_composer": "transient"})], max_attempts=3
    )
    await consumer_for().run(drain=True)

    row = (await item_rows(pool, [item]))[item]
    assert (row["status"], row["attempts"], row["failed_step"]) == ("failed", 3, "email_composer")
    assert "gave up after 3 attempts" in row["error_message"]


async def test_retry_after_is_honoured(pool: Pool, consumer_for: Callable[..., Consumer]) -> None:
    user = await create_user(pool)
    [item] = await enqueue(
        pool, user, [behaviour(fail={"template_parser": "transient"}, retry_after=120)]
    )
    await consumer_for().run(drain=True)  # returns: the retry is not due yet

    row = await pool.fetchrow(
        "SELECT status, run_after - updated_at AS wait FROM queue_items WHERE id = $1", item
    )
    assert row is not None and row["status"] == "pending"
    assert row["wait"].total_seconds() >= 119


async def test_step_timeout_frees_the_slot(
    pool: Pool, consumer_for: Callable[..., Consumer]
) -> None:
    user = await create_user(pool)
    [item] = await enqueue(pool, user, [behaviour(hang=["web_scraper"])], max_attempts=1)
    await consumer_for(scribe_step_timeout_seconds=0.2).run(drain=True)

    row = (await item_rows(pool, [item]))[item]
    assert row["status"] == "failed"
    assert "web_scraper timed out (step timeout)" in row["error_message"]


async def test_job_timeout_bounds_the_whole_run(
    pool: Pool, consumer_for: Callable[..., Consumer]
) -> None:
    user = await create_user(pool)
    slow = {name: 0.15 for name in STEP_NAMES}
    [item] = await enqueue(pool, user, [behaviour(delay=slow)], max_attempts=1)
    await consumer_for(scribe_job_timeout_seconds=0.35).run(drain=True)

    row = (await item_rows(pool, [item]))[item]
    assert row["status"] == "failed" and "(job timeout)" in row["error_message"]


async def test_cancel_pending_item_writes_no_email(
    pool: Pool, consumer_for: Callable[..., Consumer]
) -> None:
    user = await create_user(pool)
    [item] = await enqueue(pool, user, ["topology"])
    assert await queue_items.cancel(pool, item, user) == "cancelled"
    await consumer_for().run(drain=True)

    assert (await item_rows(pool, [item]))[item]["status"] == "cancelled"
    assert await email_count(pool) == 0
    assert await queue_items.list_recent(pool, user) == []


@pytest.mark.parametrize("listen", [True, False], ids=["notify", "heartbeat"])
async def test_cancel_processing_item_stops_it_without_email_or_count(
    pool: Pool,
    consumer_for: Callable[..., Consumer],
    step_log: StepLog,
    database_url: str,
    listen: bool,
) -> None:
    user = await create_user(pool)
    [item] = await enqueue(pool, user, [behaviour(hang=["web_scraper"])])
    async with contextlib.AsyncExitStack() as stack:
        listener = None
        if listen:
            listener = await stack.enter_async_context(running_listener(Listener(database_url)))
            await asyncio.wait_for(listener.connected.wait(), 5)
        # With LISTEN the heartbeat is minutes away, so only the notification can stop it.
        consumer = consumer_for(listener, scribe_lease_seconds=600 if listen else 0.4)
        await stack.enter_async_context(running(consumer))
        await wait_until(lambda: _started(step_log, item, "web_scraper"), timeout=5)
        assert await queue_items.cancel(pool, item, user) == "processing"
        await wait_until(lambda: _status_is(pool, item, "cancelled"), timeout=5)

    assert await email_count(pool) == 0
    assert await pool.fetchval("SELECT generation_count FROM users WHERE id = $1", user) == 0
    assert await queue_items.list_recent(pool, user) == []


async def test_shutdown_releases_running_items_without_charging_an_attempt(
    pool: Pool, consumer_for: Callable[..., Consumer], step_log: StepLog
) -> None:
    user = await create_user(pool)
    [item] = await enqueue(pool, user, [behaviour(hang=["arxiv_helper"])])
    consumer = consumer_for(scribe_shutdown_grace_seconds=0.1)
    async with running(consumer):
        await wait_until(lambda: _started(step_log, item, "arxiv_helper"), timeout=5)

    row = (await item_rows(pool, [item]))[item]
    assert (row["status"], row["attempts"], row["locked_by"]) == ("pending", 0, None)
    assert row["checkpoint"]["completed"] == ["template_parser", "web_scraper"]


async def test_release_now_skips_the_grace_period(
    pool: Pool, consumer_for: Callable[..., Consumer], step_log: StepLog
) -> None:
    user = await create_user(pool)
    [item] = await enqueue(pool, user, [behaviour(hang=["template_parser"])])
    consumer = consumer_for(scribe_shutdown_grace_seconds=3600)
    task = asyncio.create_task(consumer.run())
    await wait_until(lambda: _started(step_log, item, "template_parser"), timeout=5)
    consumer.stop()
    consumer.release_now()
    await asyncio.wait_for(task, 5)
    assert (await item_rows(pool, [item]))[item]["status"] == "pending"


async def test_notify_starts_items_long_before_the_poll_interval(
    pool: Pool, consumer_for: Callable[..., Consumer], database_url: str
) -> None:
    user = await create_user(pool)
    async with running_listener(Listener(database_url)) as listener:
        await asyncio.wait_for(listener.connected.wait(), 5)
        async with running(consumer_for(listener, scribe_poll_seconds=60)):
            await asyncio.sleep(0)  # let the consumer make its first (empty) claim
            [item] = await enqueue(pool, user, ["optics"])
            await wait_until(lambda: _status_is(pool, item, "completed"), timeout=5)


async def test_a_lone_free_slot_is_refilled_while_the_backlog_runs(
    pool: Pool, consumer_for: Callable[..., Consumer]
) -> None:
    # Eight slots claimed full with more waiting; one job ends early. Its slot must take the
    # next item at once, not stay idle until a second slot frees up (claims batch under backlog).
    # The seven others hang, so no second slot ever frees up: only a lone-slot claim can run
    # the late item (the poll is far beyond the test's deadline).
    user = await create_user(pool)
    short, long = behaviour(delay={"template_parser": 0.05}), behaviour(hang=["web_scraper"])
    _first, *rest = await enqueue(pool, user, [short, *[long] * 7])
    [late] = await enqueue(pool, user, [short])
    consumer = consumer_for(
        scribe_concurrency=8, scribe_poll_seconds=3600, scribe_shutdown_grace_seconds=0
    )
    async with running(consumer):
        await wait_until(lambda: _status_is(pool, late, "completed"), timeout=30)
        rows = await item_rows(pool, rest)
        assert {row["status"] for row in rows.values()} == {"processing"}


async def test_a_consumer_never_runs_more_jobs_than_its_slots(
    pool: Pool, consumer_for: Callable[..., Consumer]
) -> None:
    user = await create_user(pool)
    items = await enqueue(pool, user, [behaviour(hang=["web_scraper"])] * 5)
    consumer = consumer_for(
        scribe_concurrency=2, scribe_poll_seconds=0.05, scribe_shutdown_grace_seconds=0
    )

    async def statuses() -> list[str]:
        return sorted(row["status"] for row in (await item_rows(pool, items)).values())

    async def two_running() -> bool:
        return await statuses() == ["pending"] * 3 + ["processing"] * 2

    passes = CountedWake()
    consumer._wake = passes  # each pass of the claim loop clears it once
    async with running(consumer):
        await wait_until(two_running, timeout=10)
        seen = passes.clears
        # Ten more passes (polls), each with both slots taken: none may claim a third item.
        await wait_until(lambda: passes.reached(seen + 10), timeout=10, message="ten polls")
        assert await two_running()
        assert consumer.running == 2


class CountedWake(asyncio.Event):
    """The consumer's wake-up event, counting the claim loop's passes (one ``clear`` each)."""

    def __init__(self) -> None:
        super().__init__()
        self.clears = 0

    def clear(self) -> None:
        self.clears += 1
        super().clear()

    async def reached(self, clears: int) -> bool:
        return self.clears >= clears


def test_a_consumer_needs_handlers_each_with_units(
    pool: Pool, make_settings: Callable[..., Settings]
) -> None:
    class NoUnits:
        def units(self) -> list[object]:
            return []

    for handlers in ({}, {"empty": NoUnits()}):
        with pytest.raises(ValueError, match=r"^no handlers, or a handler without units$"):
            Consumer(pool, make_settings(), handlers)  # type: ignore[arg-type]


async def test_a_claimed_item_shows_its_kinds_first_unit_while_it_runs(
    pool: Pool, consumer_for: Callable[..., Consumer]
) -> None:
    user = await create_user(pool)
    [item] = await enqueue(pool, user, [behaviour(hang=["template_parser"])])
    consumer = consumer_for(scribe_shutdown_grace_seconds=0)
    async with running(consumer):
        await wait_until(lambda: _status_is(pool, item, "processing"), timeout=10)
        row = (await item_rows(pool, [item]))[item]
        assert row["current_step"] == STEP_NAMES[0]


async def test_when_the_next_due_time_cannot_be_read_the_consumer_claims_again_soon(
    pool: Pool, consumer_for: Callable[..., Consumer], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def away(pool: Pool, **options: object) -> float | None:
        raise DatabaseUnavailable("connection refused")

    monkeypatch.setattr(queue_items, "seconds_until_next_due", away)
    user = await create_user(pool)
    consumer = consumer_for(scribe_poll_seconds=3600)  # no LISTEN: only the retry wakes it
    async with running(consumer):
        await asyncio.sleep(0.1)  # its first (empty) claim, then the failed due-time lookup
        [item] = await enqueue(pool, user, ["optics"])
        await wait_until(lambda: _status_is(pool, item, "completed"), timeout=10)


async def test_a_crashed_reaper_stops_the_consumer_which_says_why(
    pool: Pool,
    consumer_for: Callable[..., Consumer],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken_reaper(pool: Pool, settings: Settings, outage: QueueOutage) -> None:
        raise RuntimeError("reaper bug")

    monkeypatch.setattr(consumer_module, "reap_forever", broken_reaper)
    consumer = consumer_for(scribe_poll_seconds=3600)  # only the crash can end this run
    with (
        caplog.at_level(logging.ERROR, logger="scribe.queue.consumer"),
        pytest.raises(
            ConsumerCrashed, match=r"^consumer task failed: RuntimeError\('reaper bug'\)$"
        ),
    ):
        await asyncio.wait_for(consumer.run(), 10)
    [record] = caplog.records
    assert record.getMessage() == "queue-reaper crashed; stopping the consumer"
    assert record.exc_info is not None and str(record.exc_info[1]) == "reaper bug"


@pytest.mark.parametrize("listen", ["disabled", "unreachable"])
async def test_without_listen_items_start_within_the_poll_interval(
    pool: Pool, consumer_for: Callable[..., Consumer], database_url: str, listen: str
) -> None:
    user = await create_user(pool)
    async with contextlib.AsyncExitStack() as stack:
        listener = None
        if listen == "unreachable":  # LISTEN connection cannot be opened at all
            broken = Listener(database_url.rsplit("/", 1)[0] + "/no_such_database")
            listener = await stack.enter_async_context(running_listener(broken))
        consumer = consumer_for(listener, scribe_poll_seconds=0.3)
        await stack.enter_async_context(running(consumer))
        await asyncio.sleep(0)  # let the consumer make its first (empty) claim
        [item] = await enqueue(pool, user, ["optics"])
        # Nothing wakes the consumer but its poll timer (no LISTEN connection works).
        await wait_until(lambda: _status_is(pool, item, "completed"), timeout=30)

    row = (await item_rows(pool, [item]))[item]
    assert (row["claims"], row["attempts"]) == (1, 0)
    assert consumer.outcomes == {Outcome.COMPLETED: 1}


async def _started(log: StepLog, item: object, step: str) -> bool:
    return any(i == str(item) and s == step for i, s, _, _ in log.entries())


async def _status_is(pool: Pool, item: object, status: str) -> bool:
    query = "SELECT status = $2 FROM queue_items WHERE id = $1"
    return bool(await pool.fetchval(query, item, status))


async def test_backed_off_retry_runs_when_due_not_at_the_next_poll(
    pool: Pool, consumer_for: Callable[..., Consumer]
) -> None:
    """No NOTIFY marks the moment a retry becomes due: the idle consumer must wake for it."""
    user = await create_user(pool)
    [item] = await enqueue(
        pool, user, [behaviour(fail_once={"template_parser": "transient"}, retry_after=0.5)]
    )
    async with running(consumer_for(scribe_poll_seconds=60)):
        await wait_until(lambda: _status_is(pool, item, "completed"), timeout=10)

    row = (await item_rows(pool, [item]))[item]
    assert (row["claims"], row["attempts"]) == (2, 1)
