"""The queue engine's branches, run in-process against the real database with a small handler
that is not the email pipeline (tests/engine_support.py): retries (charged, logged), permanent
failures, provider faults, lease loss, cancel at a checkpoint and against completion, shutdown,
timeouts, and the atomic completion callback."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid

import pytest

from scribe.db import queue_items
from scribe.db.pool import Pool
from scribe.errors import PermanentStepError, TransientStepError, UpstreamUnavailable
from scribe.providers.account import Status
from scribe.queue.backoff import Backoff
from scribe.queue.job import Job, Outcome, StopReason
from tests.engine_support import (
    FOREVER,
    KIND,
    OWNER,
    SEED,
    UNITS,
    ScriptedHandler,
    accounts,
    add_item,
    claim,
    create_results_table,
    due_in,
    fail_reason,
    hang,
    raising,
    results,
    row,
    run_once,
    runner,
)
from tests.queue_support import create_user


@pytest.fixture
async def user(pool: Pool) -> uuid.UUID:
    await create_results_table(pool)
    return await create_user(pool)


async def test_a_job_of_another_kind_completes_with_its_result_written_atomically(
    pool: Pool, user: uuid.UUID
) -> None:
    item = await add_item(pool, user)
    handler = ScriptedHandler()
    handler.actions["b"] = lambda: asyncio.sleep(0.05)
    job = await claim(pool)
    assert await runner(pool, handler).run(job) is Outcome.COMPLETED
    assert job.in_step is False

    done = await row(pool, item)
    assert (done["status"], done["attempts"], done["claims"]) == ("completed", 0, 1)
    timings = done["step_timings"]
    assert set(timings) == set(UNITS)
    assert timings["b"] >= 0.05 and all(round(t, 4) == t for t in timings.values())
    assert done["email_id"] is None  # the engine writes no email: the handler wrote its result
    [result] = await results(pool)
    assert (result["item_id"], result["ran"], result["timed"]) == (item, list(UNITS), list(UNITS))
    assert handler.runs == list(UNITS)
    events = await pool.fetch(
        "SELECT kind, step, seconds, wait_seconds FROM queue_item_history WHERE item_id = $1 "
        "ORDER BY at, kind = 'complete'",
        item,
    )
    steps = [e for e in events if e["kind"] == "step"]
    assert [(e["seconds"], e["wait_seconds"]) for e in steps] == [
        (timings[name], 0.0) for name in UNITS
    ]
    assert [(e["kind"], e["step"]) for e in events] == [
        ("claim", "a"),
        ("step", "a"),
        ("step", "b"),
        ("step", "c"),
        ("complete", None),
    ]


async def test_a_unit_with_no_checkpoint_writes_nothing_until_the_next_write_logs_it(
    pool: Pool, user: uuid.UUID
) -> None:
    item = await add_item(pool, user)
    handler = ScriptedHandler()
    handler.not_worth_saving = {"a", "b"}
    seen_while_c_ran = []

    async def look() -> None:
        seen_while_c_ran.append(await row(pool, item))

    handler.actions["c"] = look
    assert await run_once(pool, handler) is Outcome.COMPLETED

    [during] = seen_while_c_ran
    # No write after a or b: the row still shows the claim's state.
    assert (during["checkpoint"], during["step_log"], during["current_step"]) == (None, None, "a")
    done = await row(pool, item)
    assert [entry[0] for entry in done["step_log"]] == list(UNITS)  # the completion logged all
    steps = await pool.fetch(
        "SELECT step, seconds, at FROM queue_item_history WHERE item_id = $1 AND kind = 'step'"
        " ORDER BY at",
        item,
    )
    assert [(s["step"], s["seconds"]) for s in steps] == [
        (name, done["step_timings"][name]) for name in UNITS
    ]
    assert steps[0]["at"] < steps[1]["at"] < steps[2]["at"]  # each when it ended, not the write
    assert handler.runs == list(UNITS)


async def test_a_retry_after_a_unit_with_no_checkpoint_runs_it_again(
    pool: Pool, user: uuid.UUID
) -> None:
    item = await add_item(pool, user)
    handler = ScriptedHandler()
    handler.not_worth_saving = {"b"}
    handler.actions["c"] = raising(TransientStepError("busy", retry_after=0))
    assert await run_once(pool, handler) is Outcome.RETRYING

    retried = await row(pool, item)
    assert (retried["checkpoint"]["completed"], retried["current_step"]) == (["a"], "b")
    del handler.actions["c"]
    assert await run_once(pool, handler) is Outcome.COMPLETED
    assert handler.runs == ["a", "b", "c", "b", "c"]  # resumed after a, the last checkpoint
    [result] = await results(pool)
    assert result["ran"] == list(UNITS)


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
    assert retried["current_step"] == "b"  # set by the checkpoint after a
    reason = await pool.fetchval(
        "SELECT reason FROM queue_item_history WHERE item_id = $1 AND kind = 'retry'", item
    )
    assert reason == "item failure"
    assert retried["checkpoint"]["completed"] == ["a"]
    [record] = [r for r in caplog.records if "raised unexpectedly" in r.getMessage()]
    assert record.getMessage() == f"item {item}: step b raised unexpectedly"
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


@pytest.mark.parametrize("retry_after", [None, 120.0])
async def test_a_charged_retry_waits_the_backoff_or_the_retry_after_asked_for(
    pool: Pool, user: uuid.UUID, retry_after: float | None
) -> None:
    item = await add_item(pool, user)
    handler = ScriptedHandler()
    handler.actions["a"] = raising(TransientStepError("busy", retry_after=retry_after))
    backoff = Backoff(base=10.0, cap=10.0)
    assert await run_once(pool, handler, backoff=backoff) is Outcome.RETRYING

    expected = backoff.delay(1, retry_after=retry_after, rng=random.Random(SEED))
    assert await due_in(pool, item) == pytest.approx(expected, abs=1e-3)


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
    handler.actions["b"] = raising(UpstreamUnavailable("529 overloaded", provider="acme"))
    providers = accounts(pool)
    assert await run_once(pool, handler, providers=providers) is Outcome.RETRYING

    waiting = await row(pool, item)
    assert (waiting["status"], waiting["attempts"]) == ("pending", 0)
    assert (waiting["waiting_for"], waiting["failed_step"]) == ("acme", "b")
    assert providers.get("acme").condition().status is Status.DOWN
    assert 59 <= await due_in(pool, item) <= 61  # back for the provider's probe (60 s)


async def test_a_provider_fault_waits_at_least_the_retry_after_it_was_given(
    pool: Pool, user: uuid.UUID
) -> None:
    item = await add_item(pool, user)
    handler = ScriptedHandler(providers={"a": "acme"})
    handler.actions["a"] = raising(UpstreamUnavailable("429", provider="acme", retry_after=500))
    assert await run_once(pool, handler) is Outcome.RETRYING
    assert await due_in(pool, item) == pytest.approx(500, abs=1e-3)


async def test_a_unit_that_succeeds_as_its_providers_probe_closes_the_breaker(
    pool: Pool, user: uuid.UUID
) -> None:
    await add_item(pool, user)
    providers = accounts(pool, probe_seconds=0)
    providers.get("acme").failed("down")
    assert providers.get("acme").condition().status is Status.DOWN
    handler = ScriptedHandler(providers={"b": "acme"})
    assert await run_once(pool, handler, providers=providers) is Outcome.COMPLETED
    assert providers.get("acme").condition().status is Status.UP
    shared = await pool.fetchval("SELECT state FROM provider_states WHERE provider = 'acme'")
    assert shared == "up"  # told to the other processes


async def test_unit_whose_provider_is_down_waits_without_running_or_an_attempt(
    pool: Pool, user: uuid.UUID
) -> None:
    item = await add_item(pool, user)
    handler = ScriptedHandler(providers={"a": "acme"})
    providers = accounts(pool)
    providers.get("acme").failed("down")
    assert await run_once(pool, handler, providers=providers) is Outcome.RETRYING

    waiting = await row(pool, item)
    assert (waiting["status"], waiting["attempts"], waiting["waiting_for"]) == (
        "pending",
        0,
        "acme",
    )
    assert waiting["error_message"].startswith("Waiting for acme")
    assert 59 <= await due_in(pool, item) <= 61  # the next probe, spread by at most a second
    assert handler.runs == []


async def test_a_unit_on_another_account_of_a_down_provider_runs_on(
    pool: Pool, user: uuid.UUID
) -> None:
    """One model family down (its account's breaker open) holds only the units on it."""
    await add_item(pool, user)
    handler = ScriptedHandler(
        providers={"a": "anthropic:claude-haiku", "c": "anthropic:claude-sonnet"}
    )
    handler.actions["a"] = raising(
        UpstreamUnavailable("HTTP 529", provider="anthropic:claude-haiku")
    )
    providers = accounts(pool)
    assert await run_once(pool, handler, providers=providers) is Outcome.RETRYING
    assert providers.get("anthropic:claude-haiku").condition().status is Status.DOWN
    assert providers.admit("anthropic:claude-sonnet") is None

    other = await add_item(pool, user)
    await pool.execute(
        "UPDATE queue_items SET run_after = now() + interval '1 hour' WHERE id <> $1", other
    )
    sonnet_only = ScriptedHandler(providers={"a": "anthropic:claude-sonnet"})
    assert await run_once(pool, sonnet_only, providers=providers) is Outcome.COMPLETED
    assert sonnet_only.runs == list(UNITS)


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
        "SELECT count(*) FROM queue_item_history WHERE item_id = $1 AND kind = 'complete'", item
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


HISTORY_ENDS = "SELECT kind FROM queue_item_history WHERE kind IN ('release', 'retry') ORDER BY at"


async def test_an_item_parked_again_for_the_same_account_writes_no_new_history_row(
    pool: Pool, user: uuid.UUID
) -> None:
    """Waiting for a closed account is recorded when the wait begins, not at every return."""
    item = await add_item(pool, user)
    handler = ScriptedHandler(providers={"a": "acme"})
    providers = accounts(pool)
    providers.get("acme").failed("down")
    for _ in range(3):
        assert await run_once(pool, handler, providers=providers) is Outcome.RETRYING
        await pool.execute("UPDATE queue_items SET run_after = now() WHERE id = $1", item)
    kinds = [e["kind"] for e in await pool.fetch(HISTORY_ENDS)]
    assert kinds == ["release"]
    waiting = await row(pool, item)
    assert (waiting["status"], waiting["waiting_for"], waiting["claims"]) == ("pending", "acme", 3)
    # Once the account is back and a step is done, a new wait is a new row.
    providers.get("acme").resume()
    handler.actions["b"] = raising(UpstreamUnavailable("529", provider="acme"))
    assert await run_once(pool, handler, providers=providers) is Outcome.RETRYING
    kinds = [e["kind"] for e in await pool.fetch(HISTORY_ENDS)]
    assert kinds == ["release", "retry"]
