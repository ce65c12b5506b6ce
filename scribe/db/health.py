"""Database reachability, the embedded server's free disk space and live queue counts."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from scribe.db.pool import DATABASE_ERRORS, Pool
from scribe.db.queries import sql
from scribe.errors import DatabaseUnavailable

_HEALTH_TIMEOUT_SECONDS = 3.0
# Below one WAL segment (16 MiB) of free space PostgreSQL cannot begin the next segment, and
# inserts fail once the last free page is gone: the server's disk counts as full.
DISK_FULL_BYTES = 16 * 1024 * 1024
MIB = 1024 * 1024


async def queue_counts(pool: Pool) -> dict[str, int]:
    """Pending and processing counts; DatabaseUnavailable when the database does not answer."""
    try:
        async with asyncio.timeout(_HEALTH_TIMEOUT_SECONDS):
            row = await pool.fetchrow(sql("queue_counts"))
    except DATABASE_ERRORS as exc:  # one that answers with an error is as unusable as a gone one
        raise DatabaseUnavailable("the database is unreachable") from exc
    assert row is not None
    return {"pending": row["pending"], "processing": row["processing"]}


async def disk_full(data_dir: Path) -> str | None:
    """Why the file system holding ``data_dir`` (the embedded server's, under SCRIBE_DATA_DIR)
    counts as full ("disk full: 3.2 MiB free"), or None (room enough, or no such directory)."""
    try:
        # statvfs on the SD card's file system: quick, but it is I/O on a slow device.
        free = (await asyncio.to_thread(shutil.disk_usage, data_dir)).free
    except OSError:
        return None
    if free >= DISK_FULL_BYTES:
        return None
    return f"disk full: {free / MIB:.1f} MiB free"
