"""The queue engine's branches, run in-process against the real database with a small handler
that is not the email pipeline: retries (charged, logged), permanent failures, provider faults,
lease loss, cancel at a checkpoint and against completion, the database going away during a
fenced write, shutdown, timeouts, and the atomic completion callback."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from scribe.clients.providers import ProviderBreakers
from scribe.db import queue_items
from scribe.db.pool import Connection, Pool, create_pool
from scribe.db.queue_items import ClaimedItem
from scribe.errors import PermanentStepError, TransientStepError
from scribe.queue.backoff import Backoff
from scribe.queue.handler import Progress, Unit
from scribe.queue.job import Job, Outcome, StopReason
from scribe.queue.runner import JobRunner, RunnerConfig
from tests.queue_support import create_user, enqueue, item_rows

KIND = "test-job"
OWNER = "engine-test"
UNITS = ("a", "b", "c")
FOREVER = 3600.0

Action = Callable[[], Awaitable[None]]


class ScriptedHandler:
    """A job of three units whose state is the list of units run; what a unit does besides is
    scripted per test. Its result is a row of ``job_results``."""

    def __init__(self, providers: dict[str, str] | None = None) -> None:
        self.actions: dict[str, Action] = {}
        self.runs: list[str] = []
        self.refuse: Exception | None = None  # raised by complete() after writing its row
        self._providers = providers or {}

    def units(self) -> Sequence[Unit]:
        return [Unit(name, self._providers.get(name)) for name in UNITS]

    def resume(self, item: ClaimedItem) -> tuple[list[str], Progress]:
        doc = item.checkpoint
        if not doc:
            return [], Progress()
        return list(doc["ran"]), Progress(list(doc["completed"]), dict(doc["timings"]))

    async def run_unit(self, unit: Unit, state: list[str]) -> list[str]:
        self.runs.append(unit.name)
        action = self.actions.get(unit.name)
        if action is not None:
            await action()
        return [*state, unit.name]

    def checkpoint(self, state: list[str], progress: Progress) -> dict[str, Any]:
        return {"ran": state, "completed": progress.completed, "timings": progress.timings}

    async def complete(
        self, conn: Connection, item: ClaimedItem, state: list[str], progress: Progress
    ) -> None:
        await conn.execute(
            "INSERT INTO job_results (item_id, ran, timed) VALUES ($1, $2, $3)",
            item.id,
            state,
            sorted(progress.timings),
        )
        if self.refuse is not None:
            raise self.refuse


def raising(exc: Exception) -> Action:
    async def action() -> None:
        raise exc

    return action


async def hang() -> None:
    await asyncio.sleep(FOREVER)


@pytest.fixture
async def user(pool: Pool) -> uuid.UUID:
    await pool.execute(
        "CREATE TABLE job_results (item_id uuid PRIMARY KEY, ran text[] NOT NULL, "
        "timed text[] NOT NULL)"
    )
    return await create_user(pool)


async def add_item(pool: Pool, user: uuid.UUID, *, max_attempts: int = 3) -> uuid.UUID:
    [item] = await enqueue(pool, user, ["x"], max_attempts=max_attempts)
    await pool.execute("UPDATE queue_items SET kind = $2 WHERE id = $1", item, KIND)
    return item


async def claim(pool: Pool) -> Job:
    [item] = await queue_items.claim(pool, OWNER, 1, lease_seconds=60, first_steps={KIND: "a"})
    return Job(item, item.fence(OWNER))


def runner(
    pool: Pool,
    handler: ScriptedHandler,
    *,
    step_timeout: float = FOREVER,
    job_timeout: float = FOREVER,
    lease_seconds: float = 60.0,
    breakers: ProviderBreakers | None = None,
) -> JobRunner:
    config = RunnerConfig(
        step_timeout=step_timeout,
        job_timeout=job_timeout,
        lease_seconds=lease_seconds,
        backoff=Backoff(base=0.0, cap=0.0),
        max_age_seconds=86400.0,
    )
    breakers = breakers or ProviderBreakers(threshold=1, probe_seconds=60, probe_max_seconds=60)
    return JobRunner(
        pool, {KIND: handler}, config, random.Random(1), breakers=breakers, owner=OWNER
    )


async def run_once(pool: Pool, handler: ScriptedHandler, **options: Any) -> Outcome:
    return await runner(pool, handler, **options).run(await claim(pool))


async def row(pool: Pool, item: uuid.UUID) -> Any:
    return (await item_rows(pool, [item]))[item]


async def fail_reason(pool: Pool, item: uuid.UUID) -> str | None:
    query = "SELECT reason FROM queue_item_events WHERE item_id = $1 AND kind = 'fail'"
    reason: str | None = await pool.fetchval(query, item)
    return reason


async def results(pool: Pool) -> list[Any]:
    return list(await pool.fetch("SELECT * FROM job_results"))


async def test_a_job_of_another_kind_completes_with_its_result_written_atomically(
    pool: Pool, user: uuid.UUID
) -> None:
    item = await add_item(pool, user)
    handler = ScriptedHandler()
    assert await run_once(pool, handler) is Outcome.COMPLETED

    done = await row(pool, item)
    assert (done["status"], done["attempts"], done["claims"]) == ("completed", 0, 1)
    assert set(done["step_timings"]) == set(UNITS)
    assert done["email_id"] is None  # the engine writes no email: the handler wrote its result
    [result] = await results(pool)
    assert (result["item_id"], result["ran"], result["timed"]) == (item, list(UNITS), list(UNITS))
    assert handler.runs == list(UNITS)
    events = await pool.fetch(
        "SELECT kind, step FROM queue_item_events WHERE item_id = $1 "
        "ORDER BY at, kind = 'complete'",
        item,
    )
    assert [(e["kind"], e["step"]) for e in events] == [
        ("claim", "a"),
        ("step", "a"),
        ("step", "b"),
        ("step", "c"),
        ("complete", None),
    ]


async def test_unexpected_exception_in_a_unit_is_retried_charged_and_logged(
    pool: Pool, user: uuid.UUID, caplog: pytest.LogCaptureFixture
) -> None:
    item = await add_item(pool, user)
    handler = ScriptedHandler()
    handler.actions["b"] = raising(RuntimeError("boom"))
    with caplog.at_level(logging.ERROR, logger="scribe.queue.runner"):
        assert await run_once(pool, handler) is Outcome.RETRYING

    retried = await row(pool, item)
    assert (retried["status"], retried["attempts"]) == ("pending", 1)
    assert (retried["failed_step"], retried["error_message"]) == ("b", "boom")
    assert retried["checkpoint"]["completed"] == ["a"]
    [record] = [r for r in caplog.records if "raised unexpectedly" in r.getMessage()]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert await results(pool) == []


async def test_unexpected_exception_fails_the_item_once_its_attempts_run_out(
    pool: Pool, user: uuid.UUID
) -> None:
    item = await add_item(pool, user, max_attempts=2)
    handler = ScriptedHandler()
    handler.actions["b"] = raising(RuntimeError("boom"))
    assert await run_once(pool, handler) is Outcome.RETRYING
    assert await run_once(pool, handler) is Outcome.FAILED

    failed = await row(pool, item)
    assert (failed["status"], failed["attempts"], failed["failed_step"]) == ("failed", 2, "b")
    assert failed["error_message"] == "boom (gave up after 2 attempts)"
    assert await fail_reason(pool, item) == "attempts used up"
    assert handler.runs == ["a", "b", "b"]  # the retry resumed after the checkpoint of a


async def test_transient_error_is_retried_then_resumes_after_the_checkpoint(
    pool: Pool, user: uuid.UUID
) -> None:
    item = await add_item(pool, user)
    handler = ScriptedHandler()
    handler.actions["c"] = raising(TransientStepError("busy", retry_after=0))
    assert await run_once(pool, handler) is Outcome.RETRYING
    del handler.actions["c"]
    assert await run_once(pool, handler) is Outcome.COMPLETED

    done = await row(pool, item)
    assert (done["status"], done["attempts"], done["claims"]) == ("completed", 1, 2)
    assert handler.runs == ["a", "b", "c", "c"]
    [result] = await results(pool)
    assert result["ran"] == list(UNITS)


async def test_permanent_error_fails_at_once_without_running_later_units(
    pool: Pool, user: uuid.UUID
) -> None:
    item = await add_item(pool, user)
    handler = ScriptedHandler()
    handler.actions["a"] = raising(PermanentStepError("bad input"))
    assert await run_once(pool, handler) is Outcome.FAILED

    failed = await row(pool, item)
    assert (failed["status"], failed["attempts"], failed["failed_step"]) == ("failed", 1, "a")
    assert failed["error_message"] == "bad input"
    assert await fail_reason(pool, item) == "permanent"
    assert handler.runs == ["a"]
    assert await results(pool) == []


async def test_provider_fault_requeues_without_an_attempt_and_opens_the_breaker(
    pool: Pool, user: uuid.UUID
) -> None:
    item = await add_item(pool, user)
    handler = ScriptedHandler(providers={"b": "acme"})
    handler.actions["b"] = raising(TransientStepError("529 overloaded", provider="acme"))
    breakers = ProviderBreakers(threshold=1, probe_seconds=60, probe_max_seconds=60)
    assert await run_once(pool, handler, breakers=breakers) is Outcome.RETRYING

    waiting = await row(pool, item)
    assert (waiting["status"], waiting["attempts"]) == ("pending", 0)
    assert (waiting["waiting_for"], waiting["failed_step"]) == ("acme", "b")
    assert not breakers.state("acme").up
    assert waiting["run_after"] > waiting["updated_at"]  # waits for the provider's probe


async def test_unit_whose_provider_is_down_waits_without_running_or_an_attempt(
    pool: Pool, user: uuid.UUID
) -> None:
    item = await add_item(pool, user)
    handler = ScriptedHandler(providers={"a": "acme"})
    breakers = ProviderBreakers(threshold=1, probe_seconds=60, probe_max_seconds=60)
    breakers.record_failure("acme", "down")
    assert await run_once(pool, handler, breakers=breakers) is Outcome.RETRYING

    waiting = await row(pool, item)
    assert (waiting["status"], waiting["attempts"], waiting["waiting_for"]) == (
        "pending",
        0,
        "acme",
    )
    assert waiting["error_message"].startswith("Waiting for acme")
    assert handler.runs == []


@pytest.mark.parametrize("during", ["b", "c"], ids=["before-checkpoint", "before-completion"])
async def test_lease_lost_mid_job_writes_nothing_more(
    pool: Pool, user: uuid.UUID, during: str
) -> None:
    item = await add_item(pool, user)
    handler = ScriptedHandler()

    async def steal() -> None:  # the lease lapsed and another process claimed the item
        await pool.execute(
            "UPDATE queue_items SET locked_by = 'thief', claims = claims + 1 WHERE id = $1", item
        )

    handler.actions[during] = steal
    assert await run_once(pool, handler) is Outcome.LOST

    stolen = await row(pool, item)
    assert (stolen["status"], stolen["locked_by"], stolen["attempts"]) == ("processing", "thief", 0)
    assert stolen["checkpoint"]["completed"] == list(UNITS[: UNITS.index(during)])
    assert handler.runs == list(UNITS[: UNITS.index(during) + 1])
    assert await results(pool) == []


async def test_cancel_is_noticed_at_the_next_checkpoint(pool: Pool, user: uuid.UUID) -> None:
    item = await add_item(pool, user)
    handler = ScriptedHandler()

    async def cancel() -> None:  # no LISTEN here: the checkpoint's answer tells the runner
        assert await queue_items.cancel(pool, item, user) == "processing"

    handler.actions["a"] = cancel
    assert await run_once(pool, handler) is Outcome.CANCELLED

    cancelled = await row(pool, item)
    assert (cancelled["status"], cancelled["attempts"]) == ("cancelled", 0)
    assert handler.runs == ["a"]
    assert await results(pool) == []


async def test_cancel_requested_just_before_completion_ends_cancelled_without_a_result(
    pool: Pool, user: uuid.UUID
) -> None:
    item = await add_item(pool, user)
    handler = ScriptedHandler()

    async def cancel() -> None:
        assert await queue_items.cancel(pool, item, user) == "processing"

    handler.actions["c"] = cancel
    assert await run_once(pool, handler) is Outcome.CANCELLED

    cancelled = await row(pool, item)
    assert cancelled["status"] == "cancelled" and cancelled["email_id"] is None
    assert handler.runs == list(UNITS)
    assert await results(pool) == []
    count = await pool.fetchval("SELECT generation_count FROM users WHERE id = $1", user)
    assert count == 0


async def test_a_cancel_already_requested_at_claim_runs_nothing(
    pool: Pool, user: uuid.UUID
) -> None:
    item = await add_item(pool, user)
    await pool.execute("UPDATE queue_items SET cancel_requested_at = now() WHERE id = $1", item)
    handler = ScriptedHandler()
    assert await run_once(pool, handler) is Outcome.CANCELLED
    assert handler.runs == []
    assert (await row(pool, item))["status"] == "cancelled"


@pytest.mark.parametrize(
    ("refusal", "outcome", "status", "attempts"),
    [
        (PermanentStepError("nothing to store"), Outcome.FAILED, "failed", 1),
        (RuntimeError("bug in the result write"), Outcome.RETRYING, "pending", 1),
    ],
    ids=["permanent", "unexpected"],
)
async def test_a_failing_result_write_rolls_the_completion_back(
    pool: Pool,
    user: uuid.UUID,
    refusal: Exception,
    outcome: Outcome,
    status: str,
    attempts: int,
) -> None:
    item = await add_item(pool, user)
    handler = ScriptedHandler()
    handler.refuse = refusal
    assert await run_once(pool, handler) is outcome

    after = await row(pool, item)
    assert (after["status"], after["attempts"], after["failed_step"]) == (status, attempts, "c")
    assert after["error_message"].startswith(str(refusal))
    assert await results(pool) == []  # written, then rolled back with the completion
    completions = await pool.fetchval(
        "SELECT count(*) FROM queue_item_events WHERE item_id = $1 AND kind = 'complete'", item
    )
    assert completions == 0


async def test_an_item_of_an_unknown_kind_fails_naming_it(pool: Pool, user: uuid.UUID) -> None:
    item = await add_item(pool, user)
    await pool.execute("UPDATE queue_items SET kind = 'mystery' WHERE id = $1", item)
    [claimed] = await queue_items.claim(pool, OWNER, 1, lease_seconds=60, first_steps={KIND: "a"})
    assert claimed.kind == "mystery"
    outcome = await runner(pool, ScriptedHandler()).run(Job(claimed, claimed.fence(OWNER)))
    assert outcome is Outcome.FAILED
    failed = await row(pool, item)
    assert failed["status"] == "failed" and "'mystery'" in failed["error_message"]
    assert await fail_reason(pool, item) == "unknown kind"
    assert failed["current_step"] is None  # no first unit known for this kind


@pytest.mark.parametrize(
    ("step_timeout", "job_timeout", "limit"),
    [(0.2, FOREVER, "step"), (FOREVER, 0.2, "job")],
)
async def test_a_hung_unit_is_ended_by_the_tighter_of_step_and_job_timeout(
    pool: Pool, user: uuid.UUID, step_timeout: float, job_timeout: float, limit: str
) -> None:
    item = await add_item(pool, user)
    handler = ScriptedHandler()
    handler.actions["b"] = hang
    outcome = await run_once(pool, handler, step_timeout=step_timeout, job_timeout=job_timeout)
    assert outcome is Outcome.RETRYING

    retried = await row(pool, item)
    assert (retried["status"], retried["attempts"], retried["failed_step"]) == ("pending", 1, "b")
    assert retried["error_message"] == f"b timed out ({limit} timeout)"


async def test_shutdown_during_a_unit_releases_the_item_without_an_attempt(
    pool: Pool, user: uuid.UUID
) -> None:
    item = await add_item(pool, user)
    handler = ScriptedHandler()
    job = await claim(pool)
    started = asyncio.Event()

    async def block() -> None:
        started.set()
        await hang()

    handler.actions["b"] = block
    job.task = asyncio.create_task(runner(pool, handler).run(job))
    await started.wait()
    job.request_stop(StopReason.SHUTDOWN)  # cancels the running unit
    assert await job.task is Outcome.RELEASED

    released = await row(pool, item)
    assert (released["status"], released["attempts"], released["locked_by"]) == (
        "pending",
        0,
        None,
    )
    assert released["checkpoint"]["completed"] == ["a"]  # kept: the next claim resumes at b
    assert await results(pool) == []


async def test_shutdown_between_units_releases_at_the_boundary(pool: Pool, user: uuid.UUID) -> None:
    item = await add_item(pool, user)
    handler = ScriptedHandler()
    job = await claim(pool)

    async def stop_after_this_unit() -> None:  # no task to cancel: noticed at the boundary
        job.request_stop(StopReason.SHUTDOWN)

    handler.actions["b"] = stop_after_this_unit
    assert await runner(pool, handler).run(job) is Outcome.RELEASED
    released = await row(pool, item)
    assert (released["status"], released["attempts"]) == ("pending", 0)
    assert released["checkpoint"]["completed"] == ["a", "b"]
    assert handler.runs == ["a", "b"]


# --- the database going away during a fenced write ---


@contextmanager
def write_retries() -> Iterator[asyncio.Event]:
    """An event set when the runner's write failed and it is about to try again."""
    retrying = asyncio.Event()

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("write failed"):
                retrying.set()

    spy = Spy(logging.INFO)
    logger = logging.getLogger("scribe.queue.runner")
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


@pytest.mark.parametrize("during", ["b", "c"], ids=["checkpoint", "completion"])
async def test_a_fenced_write_waits_out_a_brief_database_outage_and_lands_once(
    user: uuid.UUID, database_url: str, pg_admin_dsn: str, during: str
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
                    runner(worker_pool, handler, lease_seconds=60).run(await claim(worker_pool))
                )
                await retrying.wait()  # the write failed at least once
                await switch.back()
                assert await run is Outcome.COMPLETED
            finally:
                await worker_pool.close()

    check = await create_pool(database_url, size=1, transaction_pooler=False)
    try:
        done = await row(check, item)
        assert done["status"] == "completed" and done["checkpoint"]["completed"] == ["a", "b"]
        steps = await check.fetch(
            "SELECT step FROM queue_item_events WHERE item_id = $1 AND kind = 'step'", item
        )
        assert sorted(e["step"] for e in steps) == list(UNITS)  # each write landed once
        [result] = await results(check)
        assert result["ran"] == list(UNITS)
    finally:
        await check.close()


async def test_a_write_gives_up_when_the_database_stays_away_past_the_lease(
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
        handler.actions["b"] = switch.away
        try:
            job = await claim(worker_pool)
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
