"""Per-user queue quotas (items per UTC day, live items at once) and the bounded queue list."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from scribe.db import queue_items
from scribe.db.pool import Pool, create_pool
from scribe.db.queue_items import NewItem, QueueQuota
from scribe.errors import QuotaExceeded
from scribe.settings import Settings
from tests.conftest import auth_headers, serve

TEMPLATE = (
    "Dear {{name}}, I read your recent work on {{topic}} with great interest and would love "
    "to ask two short questions about it."
)
STUDENT = auth_headers("student@uni.edu")
ADMIN = auth_headers("boss@uni.edu")


def batch(count: int) -> dict[str, Any]:
    items = [
        {"recipient_name": f"Prof. R{n}", "recipient_interest": "widgets"} for n in range(count)
    ]
    return {"email_template": TEMPLATE, "items": items}


@pytest.fixture
async def api(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        scribe_worker=False,
        scribe_queue_daily_items=250,
        scribe_queue_max_pending=150,
        admin_emails="boss@uni.edu",
    )
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        for headers in (STUDENT, ADMIN):
            assert (await http.post("/api/user/init", json={}, headers=headers)).status_code == 201
        yield http


async def test_pending_quota_is_409_naming_the_limit(api: httpx.AsyncClient) -> None:
    assert (await api.post("/api/queue/batch", json=batch(100), headers=STUDENT)).status_code == 201
    over = await api.post("/api/queue/batch", json=batch(51), headers=STUDENT)
    assert over.status_code == 409  # final: the frontend's client re-sends a 429 by itself
    assert "at most 150 can be pending at once" in over.json()["detail"]
    assert "cancel" not in over.json()["detail"]  # the app has no cancel control
    assert "you have 100; this request adds 51" in over.json()["detail"]
    assert int(over.headers["Retry-After"]) >= 1
    fits = await api.post("/api/queue/batch", json=batch(50), headers=STUDENT)
    assert fits.status_code == 201
    single = await api.post(
        "/api/email/generate",
        json={"email_template": TEMPLATE, "recipient_name": "Dr. X", "recipient_interest": "ab"},
        headers=STUDENT,
    )
    assert single.status_code == 409 and "pending at once" in single.json()["detail"]


async def test_daily_quota_counts_cancelled_and_finished_items(
    api: httpx.AsyncClient, pool: Pool
) -> None:
    for _ in range(2):
        queued = await api.post("/api/queue/batch", json=batch(100), headers=STUDENT)
        assert queued.status_code == 201
        async with pool.acquire() as conn:  # finished items free the pending quota, not the day
            await conn.execute("UPDATE queue_items SET status = 'cancelled'")
    over = await api.post("/api/queue/batch", json=batch(51), headers=STUDENT)
    assert over.status_code == 409
    detail = over.json()["detail"]
    assert "at most 250 emails can be queued per day" in detail and "00:00 UTC" in detail
    assert 1 <= int(over.headers["Retry-After"]) <= 86_400
    assert (await api.post("/api/queue/batch", json=batch(50), headers=STUDENT)).status_code == 201


async def test_admins_are_exempt_from_queue_quotas(api: httpx.AsyncClient) -> None:
    for _ in range(3):
        queued = await api.post("/api/queue/batch", json=batch(100), headers=ADMIN)
        assert queued.status_code == 201


async def test_idempotent_replay_is_not_counted_again(api: httpx.AsyncClient) -> None:
    headers = {**STUDENT, "Idempotency-Key": "k1"}
    first = await api.post("/api/queue/batch", json=batch(100), headers=headers)
    again = await api.post("/api/queue/batch", json=batch(100), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["queue_item_ids"] == again.json()["queue_item_ids"]


async def test_two_processes_cannot_both_slip_past_the_quota(
    api: httpx.AsyncClient, database_url: str
) -> None:
    """Two pools (as two service processes would have) enqueue at once; only one fits."""
    profile = (await api.get("/api/user/profile", headers=STUDENT)).json()
    user_id = uuid.UUID(profile["id"])
    quota = QueueQuota(daily_items=150, max_pending=1000)
    items = [NewItem(f"Prof. R{n}", "widgets") for n in range(100)]
    pools = [await create_pool(database_url, size=1, transaction_pooler=False) for _ in range(2)]
    try:
        results = await asyncio.gather(
            *(
                queue_items.enqueue(p, user_id, items, TEMPLATE, max_attempts=3, quota=quota)
                for p in pools
            ),
            return_exceptions=True,
        )
        assert sum(isinstance(r, QuotaExceeded) for r in results) == 1
        async with pools[0].acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM queue_items") == 100
    finally:
        for p in pools:
            await p.close()


async def test_queue_list_is_bounded_with_live_items_first(
    api: httpx.AsyncClient, pool: Pool
) -> None:
    profile = (await api.get("/api/user/profile", headers=STUDENT)).json()
    user_id = uuid.UUID(profile["id"])
    items = [NewItem(f"Prof. R{n}", "widgets") for n in range(8)]
    ids = await queue_items.enqueue(pool, user_id, items, TEMPLATE, max_attempts=3)
    async with pool.acquire() as conn:  # the 3 oldest finished, the rest pending
        await conn.execute(
            "UPDATE queue_items SET status = 'completed', completed_at = now() "
            "WHERE id = ANY($1::uuid[])",
            ids[:3],
        )
    shown = await queue_items.list_recent(pool, user_id, limit=6)
    assert [row.id for row in shown] == ids[2:]  # 5 live + the newest finished, oldest first
    assert [row.position for row in shown] == [None, 1, 2, 3, 4, 5]
    shown = await queue_items.list_recent(pool, user_id, limit=3)
    assert [row.id for row in shown] == ids[5:]  # the newest live ones, positions kept
    assert [row.position for row in shown] == [3, 4, 5]
    listed = (await api.get("/api/queue/", headers=STUDENT)).json()
    assert len(listed) == 8
