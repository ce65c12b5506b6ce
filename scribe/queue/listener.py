"""LISTEN/NOTIFY wake-ups, shared by the consumer and the SSE stream of one process.

One dedicated connection LISTENs on the queue channels. It reconnects when the connection drops
or stops answering a periodic self-ping, and after every (re)connect tells each subscriber "you
may have missed something" (payload ``None``) so it re-polls at once. Subscribers never depend on
it alone: the consumer polls every few seconds anyway, which is also the whole story in poll-only
mode (transaction poolers, where LISTEN does not work).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable

from scribe.db.listen import ListenConnection
from scribe.errors import DatabaseUnavailable
from scribe.process.background import running

log = logging.getLogger(__name__)

WAKE_CHANNEL = "scribe_queue"  # payload '': new or released items are due
CANCEL_CHANNEL = "scribe_cancel"  # payload: id of a processing item the user cancelled
ITEMS_CHANNEL = "scribe_queue_items"  # payload: user id whose items changed (a trigger sends it)
PING_CHANNEL = "scribe_listener_ping"
CHANNELS = (WAKE_CHANNEL, CANCEL_CHANNEL, ITEMS_CHANNEL, PING_CHANNEL)

Subscriber = Callable[[str | None], None]
"""Called with a notification's payload, or None after a (re)connect."""


class Listener:
    """Keeps one LISTEN connection alive and fans notifications out to subscribers."""

    def __init__(
        self,
        dsn: str,
        *,
        ping_seconds: float = 10.0,
        ping_timeout_seconds: float = 5.0,
        max_reconnect_delay: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._ping_seconds = ping_seconds
        self._ping_timeout = ping_timeout_seconds
        self._max_reconnect_delay = max_reconnect_delay
        self._subscribers: dict[str, set[Subscriber]] = {channel: set() for channel in CHANNELS}
        self._pongs: dict[str, asyncio.Event] = {}
        self.connected = asyncio.Event()
        self.reconnects = 0

    def subscribe(self, channel: str, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber`` for each notification on ``channel``; returns the unsubscribe."""
        self._subscribers[channel].add(subscriber)
        return lambda: self._subscribers[channel].discard(subscriber)

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel == PING_CHANNEL:
            pong = self._pongs.get(payload)
            if pong is not None:
                pong.set()
            return
        for subscriber in list(self._subscribers.get(channel, ())):
            subscriber(payload)

    def _announce_reconnect(self) -> None:
        for channel in (WAKE_CHANNEL, CANCEL_CHANNEL, ITEMS_CHANNEL):
            for subscriber in list(self._subscribers[channel]):
                subscriber(None)

    async def run(self) -> None:
        """Connect, listen, and reconnect forever (until cancelled)."""
        delay = 0.1
        while True:
            lost = asyncio.Event()
            try:
                conn = await ListenConnection.open(self._dsn, CHANNELS, self._dispatch, lost.set)
            except DatabaseUnavailable as exc:
                # The first failure is news; the retries of an outage are not (one line each
                # would flood the log during a long outage).
                level = logging.WARNING if delay == 0.1 else logging.DEBUG
                log.log(level, "LISTEN connection failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_reconnect_delay)
                continue
            if delay > 0.1 or self.reconnects:
                log.info("LISTEN connection (re)established")
            delay = 0.1
            self.connected.set()
            self._announce_reconnect()
            try:
                await self._watch(conn, lost)
            finally:
                self.connected.clear()
                await conn.close()
            self.reconnects += 1
            log.warning("LISTEN connection lost; reconnecting")

    async def _watch(self, conn: ListenConnection, lost: asyncio.Event) -> None:
        """Return when the connection dropped or failed its self-ping."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), self._ping_seconds)
                return
            if not await self._ping(conn):
                return

    async def _ping(self, conn: ListenConnection) -> bool:
        nonce = uuid.uuid4().hex
        pong = self._pongs[nonce] = asyncio.Event()
        try:
            async with asyncio.timeout(self._ping_timeout):
                await conn.ping(PING_CHANNEL, nonce)
                await pong.wait()
        except (TimeoutError, DatabaseUnavailable) as exc:
            log.warning("LISTEN self-ping failed: %s", type(exc).__name__)
            return False
        finally:
            del self._pongs[nonce]
        return True


@contextlib.asynccontextmanager
async def running_listener(listener: Listener) -> AsyncIterator[Listener]:
    """Run ``listener`` in a tracked task for the duration of the block."""
    # Consumers keep polling, so the queue still works; only wake-ups get slower.
    async with running(
        listener.run(), name="queue-listener", if_it_dies="crashed; falling back to polling"
    ):
        yield listener
