"""Database reachability and live queue counts."""

from __future__ import annotations

import asyncio

import asyncpg

from scribe.db.pool import Pool
from scribe.db.queries import sql
from scribe.errors import DatabaseUnavailable

_HEALTH_TIMEOUT_SECONDS = 3.0


async def queue_counts(pool: Pool) -> dict[str, int]:
    """Pending and processing counts; DatabaseUnavailable when the database does not answer."""
    try:
        async with asyncio.timeout(_HEALTH_TIMEOUT_SECONDS):
            row = await pool.fetchrow(sql("queue_counts"))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable("the database is unreachable") from exc
    assert row is not None
    return {"pending": row["pending"], "processing": row["processing"]}
