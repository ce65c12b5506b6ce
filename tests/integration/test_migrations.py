"""The migration runner: idempotent, and safe when several processes start together."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from scribe.db import databases, migrations
from scribe.db.embedded import with_database
from tests.database import drop_database

_LOCK_KEY = 7263918401  # the key of `lock_migrations` in queries.sql
_TABLES = {"users", "emails", "templates", "queue_items", "schema_migrations"}


@pytest.fixture
async def empty_database(pg_admin_dsn: str) -> AsyncIterator[str]:
    """A database with nothing in it, dropped afterwards."""
    name = f"scribe_m_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    await databases.ensure_database(pg_admin_dsn, name)
    try:
        yield with_database(pg_admin_dsn, name)
    finally:
        await drop_database(pg_admin_dsn, name)


async def _pending(conn: asyncpg.Connection) -> list[str]:
    """Versions shipped but not yet applied."""
    done: set[str] = set()
    if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
    return [m.version for m in migrations.load_migrations() if m.version not in done]


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row["tablename"] for row in rows}


async def test_applying_twice_is_a_no_op(empty_database: str) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        shipped = [m.version for m in migrations.load_migrations()]
        assert await _pending(conn) == shipped
        assert await migrations.migrate(conn) == shipped
        ledger = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        assert await migrations.migrate(conn) == []
        assert await conn.fetch("SELECT version, checksum FROM schema_migrations") == ledger
        assert await _pending(conn) == []
        assert await _tables(conn) >= _TABLES
    finally:
        await conn.close()


async def test_template_database_is_fully_migrated(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await _pending(conn) == []
        assert await migrations.migrate(conn) == []
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("version", "recorded", "warned"),
    [
        # Checksums from before a header comment was reworded: still the same migration.
        ("0003", "63746b0048d825ba49ced7a11d821fa675e918cae0878a2f1f0b8f935e66c918", False),
        ("0006", "f42b6a2dc801e6463806aeac95954e1ed63c90b61e836929fe7be92abba060b2", False),
        ("0003", "0" * 64, True),
    ],
)
async def test_an_applied_file_is_unchanged_only_under_a_checksum_it_had(
    database_url: str, version: str, recorded: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE schema_migrations SET checksum = $2 WHERE version = $1", version, recorded
        )
        assert await migrations.migrate(conn) == []
    finally:
        await conn.close()
    changed = f"migration {version} changed after it was applied"
    assert (changed in caplog.text) is warned


def test_migrations_are_numbered_and_unique() -> None:
    found = migrations.load_migrations()
    assert found and found[0].version == "0001"
    assert [m.version for m in found] == sorted({m.version for m in found})


async def _wait_for_lock_waiters(conn: asyncpg.Connection, count: int) -> None:
    async with asyncio.timeout(30):
        while True:
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
            )
            if waiting >= count:
                return
            await asyncio.sleep(0.05)


async def _scribe_migrate(dsn: str, cwd: Path) -> asyncio.subprocess.Process:
    env = {"PATH": os.environ.get("PATH", ""), "DATABASE_URL": dsn, "SCRIBE_DATA_DIR": str(cwd)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scribe.cli",
        "migrate",
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.mark.slow
async def test_two_processes_migrating_at_once_apply_one_set(
    empty_database: str, tmp_path: Path
) -> None:
    holder = await asyncpg.connect(empty_database)
    try:
        # Hold the migration lock until both processes are queued on it, then let them race.
        await holder.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        processes = [await _scribe_migrate(empty_database, tmp_path) for _ in range(2)]
        await _wait_for_lock_waiters(holder, 2)
        await holder.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
        results = [await process.communicate() for process in processes]
        for process, (_, stderr) in zip(processes, results, strict=True):
            assert process.returncode == 0, stderr.decode()
        shipped = [m.version for m in migrations.load_migrations()]
        # Each migration takes the lock in its own transaction, so with three or more the two
        # processes may take turns; what must hold is that each is applied exactly once.
        applied = []
        for stdout, _ in results:
            listed = stdout.decode().strip().partition(": ")[2]
            applied += [] if listed == "none pending" else listed.split(", ")
        assert sorted(applied) == shipped
        versions = await holder.fetch("SELECT version FROM schema_migrations")
        assert sorted(row["version"] for row in versions) == shipped
        assert await _tables(holder) >= _TABLES
    finally:
        await holder.close()
