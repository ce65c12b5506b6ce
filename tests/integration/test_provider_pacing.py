"""Pacing against rate-limited fakes through the real queue: nothing fails, few 429s. The
accounts and the fakes' limits share a clock the test controls: waiting out a rate-limit window
takes no time."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from scribe.clients import Clients
from scribe.db import queue_items, users
from scribe.db.pool import Pool
from scribe.db.providers import ProviderTables
from scribe.db.queue_items import NewItem
from scribe.emails.handler import email_handlers
from scribe.providers.accounts import Accounts
from scribe.providers.sharing import AccountSharing
from scribe.queue.consumer import Consumer
from scribe.steps.pipeline import build_pipeline
from tests.fakes.clock import FakeClock
from tests.fakes.fixtures import GENERAL_TEMPLATE, fake_clients, fake_settings
from tests.fakes.limits import FakeLimits
from tests.fakes.services import FakeServices, Scripted

ITEMS = 12


async def _enqueue(pool: Pool, count: int) -> uuid.UUID:
    user_id = uuid.uuid4()
    await users.create(pool, user_id, f"{user_id.hex[:8]}@uni.edu", None)
    await queue_items.enqueue(
        pool,
        user_id,
        [NewItem(f"Jane Roe{i}", "quantum widgets") for i in range(count)],
        GENERAL_TEMPLATE,
        max_attempts=1,
    )
    return user_id


@contextlib.asynccontextmanager
async def _process(
    pool: Pool, fakes: FakeServices, clock: FakeClock
) -> AsyncIterator[tuple[Consumer, Clients, AccountSharing]]:
    """What one worker process has: its own clients (accounts) and consumer, and its row in the
    provider_users table (registered before the first call, as a process that just started)."""
    settings = fake_settings(fakes, scribe_concurrency=8, scribe_max_attempts=1)
    async with fake_clients(settings, fakes, clock=clock.clock) as clients:
        sharing = AccountSharing(ProviderTables(pool), clients.accounts, interval=0.5, window=10.0)
        for account in clients.accounts.all():
            account.last_used = account.now()  # about to be used: count in from the start
        await sharing.refresh()
        task = asyncio.create_task(sharing.run(), name="test-sharing")
        try:
            yield (
                Consumer(
                    pool,
                    settings,
                    email_handlers(build_pipeline(clients), settings),
                    providers=clients.accounts,
                ),
                clients,
                sharing,
            )
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _drain_batch(pool: Pool, fakes: FakeServices, count: int, clock: FakeClock) -> uuid.UUID:
    user_id = await _enqueue(pool, count)
    async with _process(pool, fakes, clock) as (consumer, _, _):
        await consumer.run(drain=True)
    return user_id


async def test_a_batch_over_the_request_limit_completes_without_failures_or_429s(
    pool: Pool, fakes: FakeServices
) -> None:
    # 10 requests/min per model family: the 12 composer calls overrun the initial bucket, so
    # some wait ~6 s each (on the test's clock) for the refill instead of being refused (the
    # batch's template is analysed by one parser call).
    clock = FakeClock()
    fakes.limits["anthropic"] = FakeLimits(requests=10, clock=clock.clock.monotonic)
    user_id = await _drain_batch(pool, fakes, ITEMS, clock)
    items = await queue_items.list_recent(pool, user_id)
    assert [item.status for item in items] == ["completed"] * ITEMS
    rows = await pool.fetch("SELECT attempts FROM queue_items")
    assert {row["attempts"] for row in rows} == {0}  # attempts count only the item's faults
    assert sum(limits.rejected for limits in fakes.family_limits.values()) == 0
    assert sum(limits.accepted for limits in fakes.family_limits.values()) == ITEMS + 1
    # The time spent waiting for the limit shows in the step events (and the views over them).
    waited = await pool.fetchval(
        "SELECT sum(wait_seconds) FROM queue_item_history WHERE kind = 'step'"
    )
    assert waited is not None and waited > 1.0


async def test_429s_from_the_provider_are_waited_out_not_charged(
    pool: Pool, fakes: FakeServices
) -> None:
    fakes.script(
        "anthropic",
        *[Scripted(status=429, headers={"retry-after": "1"}) for _ in range(3)],
    )
    clock = FakeClock()
    user_id = await _drain_batch(pool, fakes, 3, clock)
    items = await queue_items.list_recent(pool, user_id)
    assert [item.status for item in items] == ["completed"] * 3
    assert await pool.fetchval("SELECT max(attempts) FROM queue_items") == 0
    assert sum(clock.slept) >= 3.0  # each retry-after waited out


async def test_two_processes_sharing_one_account_divide_it_and_nothing_fails(
    pool: Pool, fakes: FakeServices
) -> None:
    # Two worker processes (each its own pacers and consumer) against one account limited to
    # 10 requests/min per model family: each paces at half, so the fake refuses nothing.
    clock = FakeClock()
    fakes.limits["anthropic"] = FakeLimits(requests=10, clock=clock.clock.monotonic)
    user_id = await _enqueue(pool, ITEMS)
    async with (
        _process(pool, fakes, clock) as (first, first_clients, first_sharing),
        _process(pool, fakes, clock) as (second, second_clients, _),
    ):
        await first_sharing.refresh()  # the first has seen the second start
        for clients in (first_clients, second_clients):
            assert {
                a.name: a.share for a in clients.accounts.all() if a.name.startswith("anthropic")
            } == {
                "anthropic:claude-haiku": 2,
                "anthropic:claude-sonnet": 2,
            }
        await asyncio.gather(first.run(drain=True), second.run(drain=True))
    items = await queue_items.list_recent(pool, user_id)
    assert [item.status for item in items] == ["completed"] * ITEMS
    assert await pool.fetchval("SELECT max(attempts) FROM queue_items") == 0
    assert sum(limits.rejected for limits in fakes.family_limits.values()) == 0
    # One composer call per item, and one parser call per process (each analyses the template
    # once; these two share no analysis store).
    assert sum(limits.accepted for limits in fakes.family_limits.values()) == ITEMS + 2
    assert first.outcomes and second.outcomes  # both processes did part of the batch


async def test_every_process_divides_by_the_processes_using_the_account_serve_only_included(
    pool: Pool,
) -> None:
    account = "anthropic:claude-sonnet"
    worker, serve_only = Accounts(), Accounts()
    worker_pacer, serve_pacer = worker.get(account), serve_only.get(account)
    tables = ProviderTables(pool)
    working = AccountSharing(tables, worker, interval=1.0, window=10.0)
    serving = AccountSharing(tables, serve_only, interval=1.0, window=10.0)
    worker_pacer.last_used = worker_pacer.now()
    assert await working.refresh() == {account: 1}
    # A serve-only process divides before its first template generation call.
    assert await serving.refresh() == {account: 2}
    assert serve_pacer.share == 2
    assert await working.refresh() == {account: 1}  # it has not called: the worker keeps it all
    serve_pacer.busy = 1  # a template generation call is out
    await serving.refresh()
    assert await working.refresh() == {account: 2}
    assert worker_pacer.share == 2
    await tables.leave_accounts(serving.owner)  # it stops: the worker takes it all
    assert await working.refresh() == {account: 1}
