"""A dedicated LISTEN connection (the only place that touches asyncpg's notification API).

Reconnecting is the caller's business (``scribe.queue.listener``); this module only opens the
connection, forwards notifications and reports when the connection is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import asyncpg

from scribe.db.pool import DATABASE_ERRORS, connect
from scribe.db.queries import sql
from scribe.errors import DatabaseUnavailable

NotificationHandler = Callable[[str, str], None]
"""Called with (channel, payload) for every notification."""


class ListenConnection:
    """One connection LISTENing on some channels."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @classmethod
    async def open(
        cls,
        dsn: str,
        channels: Sequence[str],
        on_notify: NotificationHandler,
        on_lost: Callable[[], None],
    ) -> ListenConnection:
        """Connect and LISTEN; ``on_lost`` is called once if the connection later drops."""

        def forward(_conn: object, _pid: int, channel: str, payload: object) -> None:
            on_notify(channel, str(payload))

        conn = await connect(dsn, transaction_pooler=False)
        try:
            for channel in channels:
                await conn.add_listener(channel, forward)
        except DATABASE_ERRORS as exc:
            await conn.close()
            raise DatabaseUnavailable(f"LISTEN failed: {type(exc).__name__}") from exc
        except asyncio.CancelledError:  # stopped while it began listening: close it, not leak it
            conn.terminate()
            raise
        conn.add_termination_listener(lambda _conn: on_lost())
        return cls(conn)

    async def ping(self, channel: str, payload: str) -> None:
        """Send a notification through this very connection (a liveness self-ping)."""
        try:
            await self._conn.execute(sql("ping_listener"), channel, payload)
        except DATABASE_ERRORS as exc:
            raise DatabaseUnavailable(f"ping failed: {type(exc).__name__}") from exc

    async def close(self) -> None:
        """Close the connection (quietly if it is already gone)."""
        if self._conn.is_closed():
            return
        try:
            await self._conn.close(timeout=2)
        except DATABASE_ERRORS:
            self._conn.terminate()
