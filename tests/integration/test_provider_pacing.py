"""Pacing against rate-limited fakes through the real queue: nothing fails, few 429s."""

from __future__ import annotations

import uuid

from scribe.db import queue_items, users
from scribe.db.pool import Pool
from scribe.db.queue_items import NewItem
from scribe.emails.handler import email_handlers
from scribe.queue.consumer import Consumer
from scribe.steps.pipeline import build_pipeline
from tests.fakes.fixtures import GENERAL_TEMPLATE, fake_clients, fake_settings
from tests.fakes.limits import FakeLimits
from tests.fakes.services import FakeServices, Scripted

ITEMS = 12


async def _drain_batch(pool: Pool, fakes: FakeServices, count: int) -> uuid.UUID:
    settings = fake_settings(fakes, scribe_concurrency=8, scribe_max_attempts=1)
    user_id = uuid.uuid4()
    await users.create(pool, user_id, f"{user_id.hex[:8]}@uni.edu", None)
    await queue_items.enqueue(
        pool,
        user_id,
        [NewItem(f"Jane Roe{i}", "quantum widgets") for i in range(count)],
        GENERAL_TEMPLATE,
        max_attempts=1,
    )
    async with fake_clients(settings, fakes) as clients:
        consumer = Consumer(
            pool,
            settings,
            email_handlers(build_pipeline(clients), settings),
            share=clients.pacers.set_share,
        )
        await consumer.run(drain=True)
    return user_id


async def test_a_batch_over_the_request_limit_completes_without_failures_or_429s(
    pool: Pool, fakes: FakeServices
) -> None:
    # 10 requests/min per model family: the 12 parser and 12 composer calls overrun the
    # initial bucket, so some wait ~6 s each for the refill instead of being refused.
    fakes.limits["anthropic"] = FakeLimits(requests=10)
    user_id = await _drain_batch(pool, fakes, ITEMS)
    items = await queue_items.list_recent(pool, user_id)
    assert [item.status for item in items] == ["completed"] * ITEMS
    rows = await pool.fetch("SELECT attempts FROM queue_items")
    assert {row["attempts"] for row in rows} == {0}  # attempts count only the item's faults
    assert sum(limits.rejected for limits in fakes.family_limits.values()) == 0
    assert sum(limits.accepted for limits in fakes.family_limits.values()) == 2 * ITEMS
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
    user_id = await _drain_batch(pool, fakes, 3)
    items = await queue_items.list_recent(pool, user_id)
    assert [item.status for item in items] == ["completed"] * 3
    assert await pool.fetchval("SELECT max(attempts) FROM queue_items") == 0
