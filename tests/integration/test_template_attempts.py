"""Template generation accounting in the database: one attempt in flight per user across
processes, the daily attempt count (a quick repeat of a failed request counting once), stale
attempts, and the exact 5-template limit."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from scribe.db import templates, users
from scribe.db.pool import Pool, create_pool
from scribe.errors import Conflict, QuotaUsedUp


async def _user(pool: Pool) -> uuid.UUID:
    user_id = uuid.uuid4()
    await users.create(pool, user_id, f"{user_id.hex[:8]}@uni.edu", None)
    return user_id


async def _start(
    pool: Pool, user_id: uuid.UUID, daily_limit: int, request: bytes = b""
) -> uuid.UUID:
    """Start an attempt; each call is a different request unless ``request`` names one."""
    fingerprint = request or uuid.uuid4().bytes
    return await templates.start_attempt(
        pool, user_id, daily_limit=daily_limit, fingerprint=fingerprint
    )


async def test_only_one_attempt_in_flight_across_processes(database_url: str, pool: Pool) -> None:
    user_id = await _user(pool)
    pools = [await create_pool(database_url, size=1, transaction_pooler=False) for _ in range(2)]
    try:
        results = await asyncio.gather(
            *(_start(p, user_id, 10) for p in pools),
            return_exceptions=True,
        )
    finally:
        for p in pools:
            await p.close()
    started = [r for r in results if isinstance(r, uuid.UUID)]
    assert len(started) == 1 and sum(isinstance(r, Conflict) for r in results) == 1
    await templates.finish_attempt(pool, started[0], "failed")
    assert isinstance(await _start(pool, user_id, 10), uuid.UUID)


async def test_finished_attempts_count_toward_the_daily_limit(pool: Pool) -> None:
    user_id = await _user(pool)
    for _ in range(3):
        attempt = await _start(pool, user_id, 3)
        await templates.finish_attempt(pool, attempt, "failed")
    with pytest.raises(QuotaUsedUp) as refused:
        await _start(pool, user_id, 3)
    assert refused.value.retry_after is not None and refused.value.retry_after > 0


async def test_a_failed_request_sent_again_at_once_counts_once(pool: Pool) -> None:
    user_id = await _user(pool)
    for _ in range(2):  # a click that failed, and the frontend's own re-send of it
        attempt = await _start(pool, user_id, 2, b"same request")
        await templates.finish_attempt(pool, attempt, "failed")
    attempt = await _start(pool, user_id, 2, b"another request")
    await templates.finish_attempt(pool, attempt, "failed")
    with pytest.raises(QuotaUsedUp) as refused:
        await _start(pool, user_id, 2, b"a third request")
    assert "not affected" in refused.value.message and "00:00 UTC" in refused.value.message
    async with pool.acquire() as conn:
        counted = await conn.fetch("SELECT counted FROM template_attempts ORDER BY started_at")
    assert [row["counted"] for row in counted] == [True, False, True]


async def test_a_repeat_of_a_repeat_counts_again(pool: Pool) -> None:
    user_id = await _user(pool)
    for _ in range(3):
        attempt = await _start(pool, user_id, 10, b"same request")
        await templates.finish_attempt(pool, attempt, "failed")
    async with pool.acquire() as conn:
        counted = await conn.fetch("SELECT counted FROM template_attempts ORDER BY started_at")
    assert [row["counted"] for row in counted] == [True, False, True]


async def test_the_same_request_after_the_repeat_window_or_a_success_counts(pool: Pool) -> None:
    user_id = await _user(pool)
    stored = await _start(pool, user_id, 10, b"same request")
    await templates.finish_attempt(pool, stored, "stored")
    failed = await _start(pool, user_id, 10, b"same request")
    await templates.finish_attempt(pool, failed, "failed")
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE template_attempts SET finished_at = now() - make_interval(secs => $1)",
            templates.REPEAT_ATTEMPT_SECONDS + 1,
        )
    await _start(pool, user_id, 10, b"same request")
    async with pool.acquire() as conn:
        counted = await conn.fetch("SELECT counted FROM template_attempts ORDER BY started_at")
    assert [row["counted"] for row in counted] == [True, True, True]


async def test_an_attempt_left_by_a_dead_process_is_closed_once_stale(pool: Pool) -> None:
    user_id = await _user(pool)
    await _start(pool, user_id, 10)
    with pytest.raises(Conflict):
        await _start(pool, user_id, 10)
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE template_attempts SET started_at = now() - make_interval(secs => $1)",
            templates.STALE_ATTEMPT_SECONDS + 1,
        )
    assert isinstance(await _start(pool, user_id, 10), uuid.UUID)
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
