"""Template generation accounting in the database: one attempt in flight per user across
processes, the daily attempt count, stale attempts, and the exact 5-template limit."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from scribe.db import templates, users
from scribe.db.pool import Pool, create_pool
from scribe.errors import Conflict, QuotaExceeded


async def _user(pool: Pool) -> uuid.UUID:
    user_id = uuid.uuid4()
    await users.create(pool, user_id, f"{user_id.hex[:8]}@uni.edu", None)
    return user_id


async def test_only_one_attempt_in_flight_across_processes(database_url: str, pool: Pool) -> None:
    user_id = await _user(pool)
    pools = [await create_pool(database_url, size=1, transaction_pooler=False) for _ in range(2)]
    try:
        results = await asyncio.gather(
            *(templates.start_attempt(p, user_id, daily_limit=10) for p in pools),
            return_exceptions=True,
        )
    finally:
        for p in pools:
            await p.close()
    started = [r for r in results if isinstance(r, uuid.UUID)]
    assert len(started) == 1 and sum(isinstance(r, Conflict) for r in results) == 1
    await templates.finish_attempt(pool, started[0], "failed")
    assert isinstance(await templates.start_attempt(pool, user_id, daily_limit=10), uuid.UUID)


async def test_finished_attempts_count_toward_the_daily_limit(pool: Pool) -> None:
    user_id = await _user(pool)
    for _ in range(3):
        attempt = await templates.start_attempt(pool, user_id, daily_limit=3)
        await templates.finish_attempt(pool, attempt, "failed")
    with pytest.raises(QuotaExceeded) as refused:
        await templates.start_attempt(pool, user_id, daily_limit=3)
    assert refused.value.retry_after is not None and refused.value.retry_after > 0


async def test_an_attempt_left_by_a_dead_process_is_closed_once_stale(pool: Pool) -> None:
    user_id = await _user(pool)
    await templates.start_attempt(pool, user_id, daily_limit=10)
    with pytest.raises(Conflict):
        await templates.start_attempt(pool, user_id, daily_limit=10)
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE template_attempts SET started_at = now() - make_interval(secs => $1)",
            templates.STALE_ATTEMPT_SECONDS + 1,
        )
    assert isinstance(await templates.start_attempt(pool, user_id, daily_limit=10), uuid.UUID)
    async with pool.acquire() as conn:
        outcomes = await conn.fetch("SELECT outcome FROM template_attempts ORDER BY started_at")
    assert [row["outcome"] for row in outcomes] == ["abandoned", None]


async def test_template_limit_is_exact_under_concurrent_stores(pool: Pool) -> None:
    user_id = await _user(pool)

    async def store() -> templates.Template | None:
        return await templates.create_within_limit(
            pool,
            user_id,
            pdf_url="https://x/resume.pdf",
            template_text="Dear {{name}}",
            user_instructions="be brief please",
            limit=5,
        )

    stored = await asyncio.gather(*(store() for _ in range(8)))
    assert sum(template is not None for template in stored) == 5
    assert len(await templates.list_for_user(pool, user_id)) == 5
