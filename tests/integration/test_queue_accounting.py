"""Whose fault: provider outages wait instead of failing, the age bound, job identity
(same-process re-claim), the events table and the operator re-queue."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from scribe.db import queue_items
from scribe.db.pool import Pool
from scribe.db.providers import ProviderTables
from scribe.db.queue_items import NewItem
from scribe.deps import provider_accounts
from scribe.emails.handler import email_handlers
from scribe.queue import reaper
from scribe.queue.consumer import Consumer
from scribe.queue.job import Outcome
from scribe.settings import Settings
from scribe.steps.pipeline import build_pipeline
from tests.fakes.fixtures import GENERAL_TEMPLATE, fake_clients, fake_settings
from tests.fakes.services import FakeServices
from tests.fakes.steps import StepLog, behaviour, deterministic_pipeline
from tests.queue_support import (
    create_user,
    email_count,
    enqueue,
    item_history,
    item_rows,
    wait_until,
)

FAST = {
    "scribe_poll_seconds": 0.1,
    "scribe_retry_base_seconds": 0.0,
    "scribe_lease_seconds": 2.0,
    "scribe_reaper_seconds": 0.2,
    "scribe_breaker_threshold": 2,
    "scribe_breaker_probe_seconds": 0.2,
    "scribe_breaker_probe_max_seconds": 0.4,
}
COMPOSER_NEEDS_ANTHROPIC = {"email_composer": "anthropic"}


@pytest.fixture
def step_log(tmp_path: Path) -> StepLog:
    directory = tmp_path / "steps"
    directory.mkdir()
    return StepLog(directory)


@pytest.fixture
def consumer_for(
    pool: Pool, make_settings: Callable[..., Settings], step_log: StepLog
) -> Callable[..., Consumer]:
    def make(**overrides: object) -> Consumer:
        settings = make_settings(**{**FAST, **overrides})
        pipeline = deterministic_pipeline(step_log.directory, COMPOSER_NEEDS_ANTHROPIC)
        providers = provider_accounts(settings, ProviderTables(pool))
        return Consumer(pool, settings, email_handlers(pipeline, settings), providers=providers)

    return make


@contextlib.asynccontextmanager
async def running(consumer: Consumer) -> AsyncIterator[None]:
    task = asyncio.create_task(consumer.run(), name="test-consumer")
    try:
        yield
    finally:
        consumer.stop()
        await task


async def _statuses(pool: Pool, ids: list[uuid.UUID]) -> set[str]:
    return {row["status"] for row in (await item_rows(pool, ids)).values()}


async def _events(pool: Pool, item: uuid.UUID) -> list[tuple[str, str | None]]:
    return [(event["kind"], event["reason"]) for event in await item_history(pool, item)]


async def test_provider_overload_waits_without_charging_attempts_and_items_complete(
    pool: Pool, consumer_for: Callable[..., Consumer], tmp_path: Path
) -> None:
    outage = tmp_path / "anthropic-down"
    outage.touch()
    down = behaviour(provider_down_while=str(outage), provider_steps=COMPOSER_NEEDS_ANTHROPIC)
    user = await create_user(pool)
    ids = await enqueue(pool, user, [down] * 6, max_attempts=1)
    consumer = consumer_for()
    async with running(consumer):
        await wait_until(
            lambda: _provider_is(pool, "anthropic", "down"), timeout=10, message="breaker open"
        )
        # Every item is back to waiting (not failed) while the provider is down.
        await wait_until(
            lambda: _released_all(pool, ids), timeout=10, message="items waiting for anthropic"
        )
        assert "failed" not in await _statuses(pool, ids)
        outage.unlink()
        await wait_until(
            lambda: _all(pool, ids, "completed"), timeout=20, message="items completed"
        )
    rows = await item_rows(pool, ids)
    assert {(row["status"], row["attempts"]) for row in rows.values()} == {("completed", 0)}
    assert await email_count(pool) == 6
    assert await _provider_is(pool, "anthropic", "up")
    kinds = {kind for item in ids for kind in await _events(pool, item)}
    assert ("release", "anthropic down") in kinds or ("retry", "anthropic unavailable") in kinds
    [providers] = await queue_items.operator_view(pool, "queue_providers")
    assert providers["provider"] == "anthropic" and providers["state"] == "up"


async def test_item_waiting_for_a_provider_past_the_age_bound_fails_saying_so(
    pool: Pool, consumer_for: Callable[..., Consumer], tmp_path: Path
) -> None:
    outage = tmp_path / "anthropic-down"
    outage.touch()
    down = behaviour(provider_down_while=str(outage), provider_steps=COMPOSER_NEEDS_ANTHROPIC)
    user = await create_user(pool)
    [item] = await enqueue(pool, user, [down], max_attempts=5)
    await pool.execute("UPDATE queue_items SET created_at = now() - interval '2 hours'")
    await consumer_for(scribe_max_item_age_seconds=3600).run(drain=True)

    row = (await item_rows(pool, [item]))[item]
    assert (row["status"], row["attempts"], row["failed_step"]) == (
        "failed",
        0,
        "email_composer",
    )
    assert row["error_message"].startswith("Gave up: not finished within 1.0 h of being queued")
    assert ("fail", "too old") in await _events(pool, item)


async def test_same_process_reclaim_keeps_the_new_job_renewed_when_the_old_one_ends(
    pool: Pool, consumer_for: Callable[..., Consumer], make_settings: Callable[..., Settings]
) -> None:
    """The old job (its lease lapsed while it hung) and the new claim of the same item run in one
    process; the old job's end must not drop the new one from lease renewal."""
    user = await create_user(pool)
    slow_compose = behaviour(hang_once=["web_scraper"], delay={"email_composer": 3.0})
    [item] = await enqueue(pool, user, [slow_compose])
    consumer = consumer_for()
    async with running(consumer):
        await wait_until(lambda: _step_is(pool, item, "web_scraper"), timeout=10)
        # The lease lapses and a reaper returns the item while its old job still hangs.
        await wait_until(lambda: _expire_and_reap(pool, make_settings, item), timeout=10)
        await wait_until(lambda: _claims_are(pool, item, 2), timeout=10, message="re-claim")
        await wait_until(
            lambda: _outcome_seen(consumer, Outcome.LOST), timeout=10, message="old job gone"
        )
        assert consumer.running == 1  # the new job is still tracked, so still renewed
        await wait_until(lambda: _all(pool, [item], "completed"), timeout=20)

    row = (await item_rows(pool, [item]))[item]
    # Completed on the second claim: its lease was renewed through the 3 s composer step.
    assert (row["claims"], row["crashes"], row["attempts"]) == (2, 1, 0)
    assert await email_count(pool) == 1


async def test_events_record_claim_steps_and_completion_with_durations(
    pool: Pool, consumer_for: Callable[..., Consumer]
) -> None:
    user = await create_user(pool)
    [item] = await enqueue(pool, user, [behaviour(fail_once={"web_scraper": "transient"})])
    await consumer_for().run(drain=True)

    events = await item_history(pool, item)
    kinds = [event["kind"] for event in events]
    assert kinds == ["claim", "step", "retry", "claim", "step", "step", "step", "complete"]
    retry = events[2]
    assert (retry["reason"], retry["step"]) == ("item failure", "web_scraper")
    assert "transient failure in web_scraper" in retry["error"]
    assert all(e["seconds"] is not None for e in events if e["kind"] == "step")
    assert (await item_rows(pool, [item]))[item]["error_message"] is None
    durations = await queue_items.operator_view(pool, "queue_step_durations")
    assert {row["step"] for row in durations} == {
        "template_parser",
        "web_scraper",
        "arxiv_helper",
        "email_composer",
    }
    [transient] = await queue_items.operator_view(pool, "queue_transient_errors")
    assert transient["item_id"] == item


async def test_requeue_puts_failed_items_back_keeping_history_and_checkpoint(
    pool: Pool, consumer_for: Callable[..., Consumer], tmp_path: Path
) -> None:
    user, other = await create_user(pool), await create_user(pool)
    permanent = behaviour(fail_once={"email_composer": "permanent"})
    [mine] = await enqueue(pool, user, [permanent])
    [theirs] = await enqueue(pool, other, [permanent])
    await consumer_for().run(drain=True)
    assert await _statuses(pool, [mine, theirs]) == {"failed"}

    requeued = await queue_items.requeue_failed(
        pool,
        ids=None,
        user_id=user,
        failed_since=None,
        step="email_composer",
        limit=100,
        requested_by="test",
    )
    assert requeued == [mine]
    await consumer_for().run(drain=True)

    rows = await item_rows(pool, [mine, theirs])
    assert (rows[mine]["status"], rows[mine]["attempts"]) == ("completed", 0)
    assert rows[theirs]["status"] == "failed"
    kinds = [kind for kind, _ in await _events(pool, mine)]
    assert kinds[:3] == ["claim", "step", "step"] and "requeue" in kinds
    assert kinds[-1] == "complete"
    # Resumed from the checkpoint: only the composer ran after the re-queue.
    assert kinds[kinds.index("requeue") :] == ["requeue", "claim", "step", "complete"]


async def _provider_is(pool: Pool, provider: str, state: str) -> bool:
    found = await pool.fetchval("SELECT state FROM provider_states WHERE provider = $1", provider)
    return bool(found == state)


async def _released_all(pool: Pool, ids: list[uuid.UUID]) -> bool:
    rows = await item_rows(pool, ids)
    return all(
        row["status"] == "pending" and row["error_message"] is not None for row in rows.values()
    )


async def _all(pool: Pool, ids: list[uuid.UUID], status: str) -> bool:
    return await _statuses(pool, ids) == {status}


async def _step_is(pool: Pool, item: uuid.UUID, step: str) -> bool:
    return bool((await item_rows(pool, [item]))[item]["current_step"] == step)


async def _claims_are(pool: Pool, item: uuid.UUID, claims: int) -> bool:
    row = (await item_rows(pool, [item]))[item]
    return bool(row["claims"] == claims and row["status"] == "processing")


async def _expire_and_reap(
    pool: Pool, make_settings: Callable[..., Settings], item: uuid.UUID
) -> bool:
    """Expire the first claim's lease and reap it; True once it is reaped (by this or by the
    consumer's own reaper, which races this one). A later claim is never expired."""
    await pool.execute(
        "UPDATE queue_items SET lease_expires_at = now() - interval '1 second'"
        " WHERE id = $1 AND claims = 1 AND status = 'processing'",
        item,
    )
    await reaper.reap_once(pool, make_settings(**FAST))
    row = (await item_rows(pool, [item]))[item]
    return bool(row["status"] == "pending" or row["claims"] > 1)


async def _outcome_seen(consumer: Consumer, outcome: Outcome) -> bool:
    return consumer.outcomes[outcome] > 0


async def test_real_clients_529s_wait_and_complete_without_charging_attempts(
    pool: Pool, database_url: str, tmp_path: Path, fakes: FakeServices
) -> None:
    """The Anthropic fake answers 529 to everything: the real client names the provider, the
    breaker opens, nothing fails (max_attempts=1); once it answers again, everything completes."""
    settings = fake_settings(
        fakes, database_url=database_url, scribe_data_dir=tmp_path / "data", **FAST
    )
    user = await create_user(pool)
    items = [NewItem(f"Jane Roe{n}", "quantum widgets") for n in range(4)]
    ids = await queue_items.enqueue(pool, user, items, GENERAL_TEMPLATE, max_attempts=1)
    fakes.outages["anthropic"] = 529
    accounts = provider_accounts(settings, ProviderTables(pool))
    async with fake_clients(settings, fakes, accounts=accounts) as clients:
        handlers = email_handlers(build_pipeline(clients), settings)
        consumer = Consumer(pool, settings, handlers, providers=clients.accounts)
        async with running(consumer):
            await wait_until(
                lambda: _provider_is(pool, "anthropic:claude-haiku", "down"),
                timeout=20,
                message="open",
            )
            assert "failed" not in await _statuses(pool, ids)
            fakes.outages.pop("anthropic")
            await wait_until(lambda: _all(pool, ids, "completed"), timeout=30)
    rows = await item_rows(pool, ids)
    assert {(row["status"], row["attempts"]) for row in rows.values()} == {("completed", 0)}
    assert await _provider_is(pool, "anthropic:claude-haiku", "up")
