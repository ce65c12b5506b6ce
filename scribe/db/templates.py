"""The templates table (generated templates)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from scribe.db.pool import Pool, translated
from scribe.db.queries import sql
from scribe.errors import Conflict, QuotaUsedUp

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Template:
    """A generated template row."""

    id: uuid.UUID
    user_id: uuid.UUID
    pdf_url: str
    template_text: str
    user_instructions: str
    created_at: datetime


def _template(record: asyncpg.Record | None) -> Template | None:
    return None if record is None else Template(**dict(record))


@translated
async def list_for_user(pool: Pool, user_id: uuid.UUID) -> list[Template]:
    """The user's templates, newest first."""
    return [Template(**dict(row)) for row in await pool.fetch(sql("list_templates"), user_id)]


@translated
async def get(pool: Pool, template_id: uuid.UUID, user_id: uuid.UUID) -> Template | None:
    """One of the user's templates, or None."""
    return _template(await pool.fetchrow(sql("get_template"), template_id, user_id))


@translated
async def create_within_limit(
    pool: Pool,
    user_id: uuid.UUID,
    *,
    pdf_url: str,
    template_text: str,
    user_instructions: str,
    limit: int,
) -> Template | None:
    """Count the template against the user's limit and store it, atomically; None (nothing
    written) when the user is already at ``limit``."""
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(sql("claim_template_slot"), user_id, limit) is None:
            return None
        record = await conn.fetchrow(
            sql("insert_template"), uuid.uuid4(), user_id, pdf_url, template_text, user_instructions
        )
    assert record is not None
    return Template(**dict(record))


# An attempt still running after this long belongs to a process that died mid-generation: the
# PDF download (30 s), the parse (seconds) and the model (60 s per call, retried) are all over.
STALE_ATTEMPT_SECONDS = 900
# The same request sent again this soon after a failed attempt is a repeat of it (the frontend
# re-sends a failed request once, about a second later): it runs, but does not count again.
REPEAT_ATTEMPT_SECONDS = 10


def daily_limit_reached(daily_limit: int, reset_seconds: float) -> QuotaUsedUp:
    """The refusal past the daily attempt limit: says it is not the template cap, and when it
    resets (409: the frontend shows the text and does not retry it)."""
    hours = max(1, round(reset_seconds / 3600))
    return QuotaUsedUp(
        f"Daily limit on template generation reached: at most {daily_limit} attempts per day, "
        f"failed ones included (your saved templates are not affected). Try again after 00:00 "
        f"UTC, in about {hours} h.",
        retry_after=reset_seconds,
    )


@translated
async def start_attempt(
    pool: Pool, user_id: uuid.UUID, *, daily_limit: int, fingerprint: bytes
) -> uuid.UUID:
    """Record a template generation as in flight and return its id; Conflict when the user
    already has one running, QuotaUsedUp past ``daily_limit`` counted attempts (failed ones
    count) in this UTC day. A request with the same ``fingerprint`` as a counted attempt that
    failed in the last REPEAT_ATTEMPT_SECONDS runs uncounted. A per-user lock held to commit
    makes the checks hold across processes."""
    attempt_id = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(sql("lock_user_quota"), user_id, "templates")
        await conn.execute(sql("close_stale_template_attempts"), user_id, STALE_ATTEMPT_SECONDS)
        usage = await conn.fetchrow(
            sql("template_attempt_usage"), user_id, fingerprint, REPEAT_ATTEMPT_SECONDS
        )
        assert usage is not None
        if usage["in_flight"]:
            log.info("template generation refused: one already in flight for %s", user_id)
            raise Conflict(
                "A template is already being generated for you; wait for it to finish "
                "before starting another."
            )
        counted = not usage["repeat"]
        if counted and usage["today"] >= daily_limit:
            log.info("template generation refused: %d attempts today", usage["today"])
            raise daily_limit_reached(daily_limit, usage["reset_seconds"])
        try:
            await conn.execute(
                sql("start_template_attempt"), attempt_id, user_id, fingerprint, counted
            )
        except asyncpg.UniqueViolationError as exc:  # only without the lock; kept as a guard
            raise Conflict("A template is already being generated for you.") from exc
    return attempt_id


@translated
async def finish_attempt(pool: Pool, attempt_id: uuid.UUID, outcome: str) -> None:
    """Record how a generation ended (``stored``, ``failed`` or ``limit``)."""
    await pool.execute(sql("finish_template_attempt"), attempt_id, outcome)
