"""``scribe backup`` and ``scribe restore``: one database to one file and back.

A backup is ``pg_dump``'s custom format (compressed, restorable table by table) of the schema
scribe's migrations write (``public``), taken in one snapshot, so it is consistent while the
service runs. It is written beside its final name and renamed when complete: a directory of
backups never holds half of one under a backup's name. A restore goes into an empty database in
one transaction, then the migrations of this release run and the items a worker held when the
dump was taken are pending again (their worker is not coming back).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from scribe.db.migrations import migrate
from scribe.db.pgbin import client_program, program_major, run
from scribe.db.pool import connect
from scribe.db.queries import sql
from scribe.errors import DataCommandFailed

BACKUP_PREFIX = "scribe-"
BACKUP_SUFFIX = ".dump"
# The archive's own entries for the schema `public`: every database already has it.
_PUBLIC_SCHEMA_ENTRY = re.compile(r"^\d+; \d+ \d+ (SCHEMA|COMMENT) - (SCHEMA )?public ")


@dataclass(frozen=True, slots=True)
class Database:
    """A database to back up or restore into, and the directory of the programs that speak its
    major (None: the ones on ``PATH``)."""

    dsn: str
    bin_dir: Path | None


@dataclass(frozen=True, slots=True)
class Backup:
    """A backup written, and the older ones pruned."""

    path: Path
    size: int
    removed: list[Path]


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restore brought back."""

    rows: dict[str, int]
    migrations: list[str]
    released: int


@contextlib.asynccontextmanager
async def statement_errors(doing: str) -> AsyncIterator[None]:
    """A statement the server refused (a permission, a lock) as one line of ``doing``'s."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        raise DataCommandFailed(f"{doing} failed: {type(exc).__name__}: {exc}") from exc


def libpq_target(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password (a command line is visible to every user) and the
    environment that carries it instead."""
    parts = urlsplit(dsn)
    env = dict(os.environ)
    if parts.password is None:
        return dsn, env
    env["PGPASSWORD"] = unquote(parts.password)
    userinfo, host = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]  # as written (still percent-encoded)
    netloc = f"{user}@{host}" if user else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), env


def list_backups(directory: Path) -> list[Path]:
    """The backups in ``directory``, oldest first (their names sort by time)."""
    return sorted(directory.glob(f"{BACKUP_PREFIX}*{BACKUP_SUFFIX}"))


async def server_major(conn: asyncpg.Connection) -> int:
    """The major of the server ``conn`` is connected to."""
    number: int = await conn.fetchval(sql("server_version_num"))
    return number // 10000


async def table_rows(conn: asyncpg.Connection) -> dict[str, int]:
    """Exact row counts of every table of the database (``schema.table``)."""
    await conn.execute(sql("create_row_counter"))
    rows = await conn.fetch(sql("table_row_counts"))
    return {row["name"]: row["rows"] for row in rows}


def dump(pg_dump: Path, dsn: str, path: Path, *, whole: bool = False) -> None:
    """``pg_dump`` a database to ``path`` (custom format): schema ``public``, or ``whole``."""
    target, env = libpq_target(dsn)
    scope = [] if whole else ["--schema=public"]
    run(
        [
            pg_dump,
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            *scope,
            f"--file={path}",
            f"--dbname={target}",
        ],
        env=env,
    )


def restore_archive(pg_restore: Path, dsn: str, path: Path) -> None:
    """``pg_restore`` an archive into a database, in one transaction, stopping at the first
    error; the entries for the schema ``public`` (which exists already) are left out."""
    target, env = libpq_target(dsn)
    entries = run([pg_restore, "--list", path]).splitlines()
    kept = [line for line in entries if not _PUBLIC_SCHEMA_ENTRY.match(line)]
    with tempfile.NamedTemporaryFile("w", suffix=".list") as listing:
        listing.write("\n".join(kept) + "\n")
        listing.flush()
        run(
            [
                pg_restore,
                "--exit-on-error",
                "--single-transaction",
                "--no-owner",
                "--no-privileges",
                f"--use-list={listing.name}",
                f"--dbname={target}",
                path,
            ],
            env=env,
        )


async def backup(database: Database, directory: Path, keep: int) -> Backup:
    """Write a backup of ``database`` into ``directory``; keep the newest ``keep`` there."""
    if keep < 1:
        raise DataCommandFailed("--keep must be at least 1")
    pg_dump = client_program("pg_dump", database.bin_dir)
    await _check_client(pg_dump, database.dsn)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataCommandFailed(f"cannot create the backup directory {directory}: {exc}") from exc
    name = f"{BACKUP_PREFIX}{datetime.now(UTC):%Y%m%dT%H%M%SZ}{BACKUP_SUFFIX}"
    path, partial = directory / name, directory / f"{name}.partial"
    try:
        await asyncio.to_thread(dump, pg_dump, database.dsn, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    removed = list_backups(directory)[:-keep]
    for old in removed:
        old.unlink()
    return Backup(path, path.stat().st_size, removed)


async def _check_client(program: Path, dsn: str) -> None:
    """Refuse a client older than the server: ``pg_dump`` cannot read a newer server."""
    conn = await connect(dsn, transaction_pooler=False)
    try:
        async with statement_errors("reading the server's version"):
            server = await server_major(conn)
    finally:
        await conn.close()
    client = await asyncio.to_thread(program_major, program)
    if client < server:
        raise DataCommandFailed(
            f"the database runs PostgreSQL {server} and {program} is PostgreSQL {client}: "
            f"install the PostgreSQL {server} client or pass --pg-bin DIR"
        )


async def restore(database: Database, path: Path, *, force: bool) -> Restored:
    """Restore a backup into ``database`` (refused when it holds tables, unless ``force``
    empties its schema first), migrate it, make held items pending again."""
    if not path.is_file():
        raise DataCommandFailed(f"no backup at {path}")
    pg_restore = client_program("pg_restore", database.bin_dir)
    conn = await connect(database.dsn, transaction_pooler=False)
    try:
        async with statement_errors("the restore"):
            await _check_restorable(conn, force=force)
            await asyncio.to_thread(run, [pg_restore, "--list", path])  # readable, first
            if force:
                await conn.execute(sql("empty_public_schema"))
            await _restore_archive_saying(pg_restore, database.dsn, path, force=force)
            applied = await migrate(conn)
            released = await conn.fetchval(sql("release_restored_items"))
            return Restored(await table_rows(conn), applied, released)
    finally:
        await conn.close()


async def _restore_archive_saying(pg_restore: Path, dsn: str, path: Path, *, force: bool) -> None:
    """``restore_archive``, its failure saying what the database holds now."""
    try:
        await asyncio.to_thread(restore_archive, pg_restore, dsn, path)
    except DataCommandFailed as exc:
        emptied = " (the database was emptied by --force)" if force else ""
        raise DataCommandFailed(f"{exc}; nothing was restored{emptied}") from exc


async def _check_restorable(conn: asyncpg.Connection, *, force: bool) -> None:
    """No scribe process may use the database; it must be empty unless ``force``."""
    others = await conn.fetchval(sql("other_scribe_sessions"))
    if others:
        raise DataCommandFailed(
            f"{others} scribe connection(s) use this database: stop scribe serve and "
            "scribe worker first"
        )
    tables = await conn.fetchval(sql("public_table_count"))
    if tables and not force:
        raise DataCommandFailed(
            f"the database is not empty ({tables} tables): restore into an empty one "
            "(a new SCRIBE_DATA_DIR or database), or pass --force to replace what it holds"
        )
