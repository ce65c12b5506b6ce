"""Server-level operations on databases (create one at startup), apart from the admin API.

Cloning and dropping databases is for tests and benches only: ``tests/database.py``."""

from __future__ import annotations

import contextlib

import asyncpg

from scribe.db.queries import sql


def quote_ident(name: str) -> str:
    """``name`` as a double-quoted SQL identifier (database names cannot be parameters)."""
    return '"' + name.replace('"', '""') + '"'


async def ensure_database(admin_dsn: str, name: str) -> None:
    """Create database ``name`` on the server of ``admin_dsn`` unless it exists."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        if await conn.fetchval(sql("database_exists"), name):
            return
        # Another process may create it between our check and our CREATE.
        with contextlib.suppress(asyncpg.DuplicateDatabaseError):
            await conn.execute(f"CREATE DATABASE {quote_ident(name)}")
    finally:
        await conn.close()
