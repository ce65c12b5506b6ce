"""The asyncpg connection pool (few connections; pooler-safe when asked)."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, ParamSpec, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from scribe.db.outage import note_answered
from scribe.errors import DatabaseFull, DatabaseUnavailable

Pool = asyncpg.Pool
# A connection a repository function runs on: one of the pool's, or a dedicated one.
Connection = asyncpg.Connection | PoolConnectionProxy

# Errors that mean "the server or the connection went away", not "the statement is wrong".
CONNECTION_LOST: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
    # Raised on connect while the database refuses connections (ALLOW_CONNECTIONS false).
    asyncpg.ObjectNotInPrerequisiteStateError,
    # "cannot switch to state …; another operation is in progress": a connection left broken by
    # a server restart mid-statement.
    asyncpg.InternalClientError,
)
# The server is there but cannot do the work now, whatever the statement: out of disk space
# (53100: "could not extend file …: No space left on device", ENOSPC on any file), other resources
# (53xxx: memory, open files, lock table) or its storage failing (58030, EIO). Retrying later is
# right; the statement and the item are not at fault.
SERVER_STRAINED: tuple[type[BaseException], ...] = (
    asyncpg.InsufficientResourcesError,
    asyncpg.PostgresIOError,
)
P = ParamSpec("P")
R = TypeVar("R")


@asynccontextmanager
async def connection_errors() -> AsyncIterator[None]:
    """Turn "the database went away" or "cannot store anything now" into DatabaseUnavailable
    (DatabaseFull for a full disk): 503 at the API, a wait in the queue. Statement errors pass
    through unchanged. A clean exit notes that the database answered (which ends an outage in
    the HTTP layer's log)."""
    try:
        yield
    except CONNECTION_LOST as exc:
        raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}") from exc
    except asyncpg.DiskFullError as exc:
        raise DatabaseFull("the database's disk is full") from exc
    except SERVER_STRAINED as exc:
        raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}") from exc
    except asyncpg.PostgresError:
        note_answered()  # the server is there: it answered with an error
        raise
    note_answered()


def translated(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Decorate a repository function with ``connection_errors``."""

    @functools.wraps(function)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        async with connection_errors():
            return await function(*args, **kwargs)

    return wrapper


# Any failure talking to the database, including the server answering with an error.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_LOST, asyncpg.PostgresError)


def connect_kwargs(transaction_pooler: bool) -> dict[str, Any]:
    """Connection options shared by the pool and single connections.

    Behind a transaction pooler (Supabase 6543, PgBouncer) prepared statements and session state
    do not survive between transactions, so the statement cache is off.
    """
    kwargs: dict[str, Any] = {"server_settings": {"application_name": "scribe"}}
    if transaction_pooler:
        kwargs["statement_cache_size"] = 0
    return kwargs


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, schema="pg_catalog", encoder=json.dumps, decoder=json.loads
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without the server-side reset (``RESET ALL; UNLISTEN *; …``): pooled connections
    never carry session state (no SET, no session advisory locks, LISTEN has its own
    connection), and the reset would double the statements of every queue job. An open
    transaction is still rolled back by asyncpg itself."""


def _without_traceback(record: logging.LogRecord) -> bool:
    """asyncpg logs each failed retry of its connection floor with a full traceback; during an
    outage one line each (backoff 1 s to 60 s) is enough."""
    if record.exc_info and record.getMessage().startswith("Failed to restore the pool"):
        cause = record.exc_info[1]
        record.msg = f"{record.getMessage()} ({type(cause).__name__}: {cause})"
        record.args, record.exc_info, record.exc_text = None, None, None
    return True


async def create_pool(dsn: str, *, size: int, transaction_pooler: bool) -> Pool:
    """Open a small pool; raise DatabaseUnavailable when the server cannot be reached."""
    asyncpg_log = logging.getLogger("asyncpg.pool")
    if _without_traceback not in asyncpg_log.filters:
        asyncpg_log.addFilter(_without_traceback)
    try:
        return await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=size,
            init=_init_connection,
            reset=_keep_session,
            **connect_kwargs(transaction_pooler),
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {type(exc).__name__}") from exc


async def connect(dsn: str, *, transaction_pooler: bool) -> asyncpg.Connection:
    """Open one dedicated connection (LISTEN, migrations) with the same codecs as the pool."""
    try:
        conn: asyncpg.Connection = await asyncpg.connect(dsn, **connect_kwargs(transaction_pooler))
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {type(exc).__name__}") from exc
    await _init_connection(conn)
    return conn
