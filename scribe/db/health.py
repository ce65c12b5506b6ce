"""Database reachability and live queue counts."""

from __future__ import annotations

import asyncio

from scribe.db.pool import DATABASE_ERRORS, Pool
from scribe.db.queries import sql
from scribe.errors import DatabaseUnavailable

_HEALTH_TIMEOUT_SECONDS = 3.0


async def queue_counts(pool: Pool) -> dict[str, int]:
    """Pending and processing counts; DatabaseUnavailable when the database does not answer."""
    try:
        async with asyncio.timeout(_HEALTH_TIMEOUT_SECONDS):
            row = await pool.fetchrow(sql("queue_counts"))
    except DATABASE_ERRORS as exc:  # one that answers with an error is as unusable as a gone one
        raise DatabaseUnavailable("the database is unreachable") from exc
    assert row is not None
    return {"pending": row["pending"], "processing": row["processing"]}
