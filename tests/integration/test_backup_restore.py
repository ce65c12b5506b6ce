"""``scribe backup`` then a fresh data directory then ``scribe restore``: the same history through
the API, and the queue resumes; a non-empty database refused; backups pruned to the newest N."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from scribe.db import queue_items
from scribe.db.backup import BACKUP_PREFIX, BACKUP_SUFFIX
from scribe.db.pgbin import bundled_bin, run
from scribe.db.pool import Pool, create_pool
from scribe.emails.handler import email_handlers
from scribe.queue.consumer import Consumer
from scribe.settings import Settings
from tests.data_support import embedded_settings, read_history, scribe, seed_history, statuses
from tests.fakes.steps import deterministic_pipeline


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_backup_restored_into_a_fresh_data_directory_shows_the_same_history_and_resumes(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    source = tmp_path / "source"
    async with embedded_settings(make_settings, source) as settings:
        async with migrated_pool(settings) as pool:
            history = await seed_history(pool)
        before = await read_history(settings, history)
        # The service may be running: the backup is one consistent snapshot all the same.
        written = await scribe("backup", data_dir=source)
    assert written.code == 0, written.stderr
    [archive] = (source / "backups").glob(f"{BACKUP_PREFIX}*{BACKUP_SUFFIX}")
    assert written.stdout == f"{archive} {archive.stat().st_size / 1024:.1f} KiB"

    fresh = tmp_path / "fresh"
    restored = await scribe("restore", str(archive), data_dir=fresh)
    assert restored.code == 0, restored.stderr
    assert "1 item(s) that were processing are pending again" in restored.stdout
    refused = await scribe("restore", str(archive), data_dir=fresh)
    assert refused.code == 1
    [line] = refused.error_lines
    assert "not empty" in line and "--force" in line
    forced = await scribe("restore", "--force", str(archive), data_dir=fresh)
    assert forced.code == 0, forced.stderr

    async with embedded_settings(make_settings, fresh) as settings:
        after = await read_history(settings, history)
        for view in ("profile", "emails", "templates"):
            assert after[view] == before[view]
        was_processing = f"Dr. {'processing'.title()}"
        assert statuses(before)[was_processing] == "processing"
        assert statuses(after) == {**statuses(before), was_processing: "pending"}
        await _drain(settings, history.items["processing"], history.items["pending"])


@contextlib.asynccontextmanager
async def migrated_pool(settings: Settings) -> AsyncIterator[Pool]:
    """A pool on the settings' database, migrated first."""
    from scribe import db
    from scribe.deps import apply_migrations

    dsn = await db.resolve_dsn(settings)
    await apply_migrations(dsn, settings)
    pool = await create_pool(dsn, size=2, transaction_pooler=False)
    try:
        yield pool
    finally:
        await pool.close()


async def _drain(settings: Settings, *expected: object) -> None:
    """A drained consumer on the restored database completes the pending items."""
    async with migrated_pool(settings) as pool:
        handlers = email_handlers(deterministic_pipeline(), settings)
        await Consumer(pool, settings, handlers).run(drain=True)
        rows = await pool.fetch(
            "SELECT id, status, email_id FROM queue_items WHERE id = any($1::uuid[])",
            list(expected),
        )
        assert len(rows) == len(expected) and {row["status"] for row in rows} == {"completed"}
        assert all(row["email_id"] is not None for row in rows)
        assert await queue_items.seconds_until_next_due(pool) is None


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_backups_of_the_embedded_server_are_pruned_to_the_newest_n(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    backups = data_dir / "backups"
    backups.mkdir(parents=True)
    older = [backups / f"{BACKUP_PREFIX}2001010{day}T000000Z{BACKUP_SUFFIX}" for day in (1, 2)]
    for path in older:
        path.write_bytes(b"an older backup")
    unrelated = backups / "notes.txt"
    unrelated.write_text("kept: not a backup")

    written = await scribe("backup", "--keep", "2", data_dir=data_dir)
    assert written.code == 0, written.stderr
    kept = sorted(backups.glob(f"{BACKUP_PREFIX}*{BACKUP_SUFFIX}"))
    assert kept[0] == older[1] and len(kept) == 2 and unrelated.exists()
    assert f"removed {older[0]}" in written.stdout


async def test_a_database_url_without_a_pg_dump_is_one_clear_line(
    database_url: str, tmp_path: Path
) -> None:
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    failed = await scribe(
        "backup", data_dir=tmp_path / "data", DATABASE_URL=database_url, PATH=str(empty_path)
    )
    assert failed.code == 1
    [line] = failed.error_lines
    assert "no pg_dump on PATH" in line and "--pg-bin" in line


async def test_a_database_url_is_backed_up_with_the_client_programs_given(
    database_url: str, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    written = await scribe(
        "backup",
        "--to",
        str(backups),
        "--pg-bin",
        str(bundled_bin()),
        data_dir=tmp_path / "data",
        DATABASE_URL=database_url,
    )
    assert written.code == 0, written.stderr
    [archive] = backups.glob(f"{BACKUP_PREFIX}*{BACKUP_SUFFIX}")
    listing = run([bundled_bin() / "pg_restore", "--list", archive])
    for table in ("users", "emails", "templates", "queue_items", "schema_migrations"):
        assert f"TABLE DATA public {table} " in listing
