"""``scribe db upgrade`` for real: a data directory written by PostgreSQL 17 refused at start,
then carried to the bundled major with every row, the old directory kept.

PostgreSQL 17's server programs come from ``TEST_OLD_POSTGRES_BIN`` (a directory with its
``initdb``, ``pg_ctl`` and ``postgres``; .ci/run prepares one); without it the test is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from scribe.db.databases import ensure_database
from scribe.db.datadir import STAGING_NAME, VERIFIED_MARK, check_data_directory
from scribe.db.embedded import DATABASE_NAME, with_database
from scribe.db.migrations import migrate
from scribe.db.pgbin import bundled_major, initialise, program_major, running_server
from scribe.db.pool import connect, create_pool
from scribe.db.upgrade import upgrade
from scribe.settings import Settings
from tests.data_support import (
    embedded_settings,
    read_history,
    scribe,
    seed_history,
    statuses,
)

OLD_MAJOR = 17
OLD_BIN = os.environ.get("TEST_OLD_POSTGRES_BIN")


def _old_bin() -> Path:
    if not OLD_BIN or not (Path(OLD_BIN) / "postgres").exists():
        pytest.skip(
            f"no PostgreSQL {OLD_MAJOR} server programs: set TEST_OLD_POSTGRES_BIN to a directory "
            "with its initdb, pg_ctl and postgres (.ci/run prepares one)"
        )
    old_bin = Path(OLD_BIN)
    assert program_major(old_bin / "postgres") == OLD_MAJOR
    return old_bin


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_directory_of_17_is_refused_then_upgraded_with_every_row_and_kept(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    old_bin = _old_bin()
    data_dir = tmp_path / "data"
    pgdata = data_dir / "postgres"
    initialise(old_bin, pgdata)
    with running_server(old_bin, pgdata) as admin_dsn:
        await ensure_database(admin_dsn, DATABASE_NAME)
        dsn = with_database(admin_dsn, DATABASE_NAME)
        conn = await connect(dsn, transaction_pooler=False)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        pool = await create_pool(dsn, size=2, transaction_pooler=False)
        try:
            history = await seed_history(pool)
        finally:
            await pool.close()
        before = await read_history(make_settings(database_url=dsn), history)

    refused = await scribe("migrate", data_dir=data_dir)
    assert refused.code == 5
    [line] = refused.error_lines
    for named in (f"PostgreSQL {OLD_MAJOR}", f"PostgreSQL {bundled_major()}", str(pgdata)):
        assert named in line
    assert "scribe db upgrade" in line and "Traceback" not in refused.stderr

    # An earlier run died during its copy: its unverified leftovers are discarded, not used.
    (data_dir / STAGING_NAME).mkdir()
    (data_dir / STAGING_NAME / "PG_VERSION").write_text(f"{bundled_major()}\n")
    upgraded = await scribe("db", "upgrade", "--old-bin", str(old_bin), data_dir=data_dir)
    assert upgraded.code == 0, upgraded.stderr
    assert f"from PostgreSQL {OLD_MAJOR} to {bundled_major()}" in upgraded.stdout
    kept = data_dir / f"postgres.old-{OLD_MAJOR}"
    assert (kept / "PG_VERSION").read_text().strip() == str(OLD_MAJOR)
    assert (pgdata / "PG_VERSION").read_text().strip() == str(bundled_major())
    assert not (data_dir / STAGING_NAME).exists()

    async with embedded_settings(make_settings, data_dir) as settings:
        after = await read_history(settings, history)
    assert after == before
    assert set(statuses(after).values()) == {
        "pending",
        "processing",
        "completed",
        "failed",
        "cancelled",
    }
    again = await scribe("db", "upgrade", data_dir=data_dir)
    assert again.code == 0 and "nothing to upgrade" in again.stdout


async def test_start_up_refuses_a_swap_cut_in_the_middle_and_the_next_run_finishes_it(
    tmp_path: Path,
) -> None:
    # The copy was verified, the old directory renamed, and the process died before the new one
    # was moved in: there is no `postgres` directory, which a start must not initialise afresh.
    data_dir = tmp_path / "data"
    kept, staging = data_dir / f"postgres.old-{OLD_MAJOR}", data_dir / STAGING_NAME
    for directory, major in ((kept, OLD_MAJOR), (staging, bundled_major())):
        directory.mkdir(parents=True)
        (directory / "PG_VERSION").write_text(f"{major}\n")
    (staging / VERIFIED_MARK).write_text(f"{OLD_MAJOR}\n")

    refused = await scribe("migrate", data_dir=data_dir)
    assert refused.code == 5
    [line] = refused.error_lines
    assert "interrupted" in line and "scribe db upgrade" in line
    assert not (data_dir / "postgres").exists()

    done = await upgrade(data_dir, old_bin=None)
    assert done.kept == kept
    assert (data_dir / "postgres" / "PG_VERSION").read_text().strip() == str(bundled_major())
    assert not (data_dir / "postgres" / VERIFIED_MARK).exists() and not staging.exists()
    check_data_directory(data_dir)  # starts normally now
