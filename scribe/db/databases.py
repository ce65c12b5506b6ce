"""Server-level operations on databases (create one at startup), apart from the admin API."""

from __future__ import annotations

import contextlib

import asyncpg

from scribe.db.queries import sql


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def ensure_database(admin_dsn: str, name: str) -> None:
    """Create database ``name`` on the server of ``admin_dsn`` unless it exists."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        if await conn.fetchval(sql("database_exists"), name):
            return
        # Another process may create it between our check and our CREATE.
        with contextlib.suppress(asyncpg.DuplicateDatabaseError):
            await conn.execute(f"CREATE DATABASE {_quote_ident(name)}")
    finally:
        await conn.close()


async def clone_database(admin_dsn: str, name: str, template: str) -> None:
    """Create database ``name`` as a copy of ``template`` (fast: a file-level copy)."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(
            f"CREATE DATABASE {_quote_ident(name)} TEMPLATE {_quote_ident(template)}"
        )
    finally:
        await conn.close()


async def drop_database(admin_dsn: str, name: str) -> None:
    """Drop database ``name`` if it exists, disconnecting its sessions."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")
    finally:
        await conn.close()
