"""Applies the plain SQL files of ``scribe/migrations`` in order, once each.

All pending files run in one transaction that first takes a transaction-scoped advisory lock, so
two processes starting together serialise and the second finds the whole set done (a lock per file
let them split the files between them), and a failing file leaves the schema as it was.
Transaction-scoped locks also work behind transaction poolers, where session locks do not.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from scribe.db.queries import sql
from scribe.errors import ConfigurationError

log = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

# Checksums that databases migrated by earlier releases hold for files whose comments have been
# reworded since (the statements are unchanged): such a file counts as applied and unchanged.
_EARLIER_CHECKSUMS: dict[str, frozenset[str]] = {
    "0003": frozenset({"63746b0048d825ba49ced7a11d821fa675e918cae0878a2f1f0b8f935e66c918"}),
    "0006": frozenset({"f42b6a2dc801e6463806aeac95954e1ed63c90b61e836929fe7be92abba060b2"}),
}


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file, to notice an applied migration edited afterwards."""
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def recorded_unchanged(self, recorded: str | None) -> bool:
        """Whether a ledger checksum is this file's, now or before a comment-only rewording."""
        earlier = _EARLIER_CHECKSUMS.get(self.version, frozenset())
        return recorded == self.checksum or recorded in earlier


def load_migrations() -> list[Migration]:
    """The migrations shipped with the package, in version order."""
    found = []
    for entry in resources.files("scribe.migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(match.group(1), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ConfigurationError(f"two migrations share a version number: {versions}")
    return found


async def _all_applied(conn: asyncpg.Connection, shipped: list[Migration]) -> bool:
    """Whether the ledger already holds every shipped migration, unchanged: one query, no lock
    (what every start but the first after an upgrade finds)."""
    try:
        rows = await conn.fetch(sql("list_schema_migrations"))
    except asyncpg.UndefinedTableError:  # a new database
        return False
    applied = {row["version"]: row["checksum"] for row in rows}
    return all(m.recorded_unchanged(applied.get(m.version)) for m in shipped)


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply every pending migration; return the versions this call applied."""
    shipped = load_migrations()
    if await _all_applied(conn, shipped):
        return []
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute(sql("lock_migrations"))
        await conn.execute(sql("create_schema_migrations"))
        for migration in shipped:
            done = await conn.fetchval(sql("get_schema_migration"), migration.version)
            if done is not None:
                if not migration.recorded_unchanged(done):
                    log.warning("migration %s changed after it was applied", migration.version)
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                sql("insert_schema_migration"),
                migration.version,
                migration.name,
                migration.checksum,
            )
            applied.append(migration.version)
            log.info("applied migration %s_%s", migration.version, migration.name)
    return applied
