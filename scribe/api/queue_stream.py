"""/api/queue/stream: the caller's queue items as Server-Sent Events, as they change.

Each stream holds a connection for as long as it is open, so streams are bounded like any other
resource: at most ``SCRIBE_SSE_MAX_STREAMS_PER_USER`` per user in a process (opening one more ends
the user's oldest), and each ends after ``SCRIBE_SSE_MAX_LIFETIME_SECONDS`` with an event that
tells the browser's EventSource to reconnect (which also re-checks the caller's token). A stream's
``queue_watchers`` row goes when it closes, however it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator

import anyio
from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response

from scribe.api.common import current_user
from scribe.api.openapi import Operation
from scribe.api.queue import QueueItemOut
from scribe.db import queue_items
from scribe.db.pool import Pool
from scribe.deps import get_deps
from scribe.errors import DatabaseUnavailable
from scribe.queue.listener import ITEMS_CHANNEL

STREAM_REFRESH_SECONDS = 30.0  # re-read even without a notification, in case one was missed
# An open stream registers its user (changes are announced only for watched users) for this long
# and renews the registration every STREAM_REFRESH_SECONDS; it lapses if its process dies.
STREAM_WATCH_SECONDS = 3 * STREAM_REFRESH_SECONDS
# On shutdown the stream sends a last event and ends itself within this time (a clean close,
# not a cancelled response); the client's EventSource reconnects to the next process.
STREAM_SHUTDOWN_GRACE_SECONDS = 5.0
STREAM_RECONNECT_MILLISECONDS = 2000
# A stream ended for a newer one of the same user: its tab should not come back at once (and
# end the next oldest in turn).
STREAM_REPLACED_RETRY_MILLISECONDS = 60_000
UNWATCH_SECONDS = 5.0  # a closing stream's last write (its watcher row) gives up after this


def _end(name: str, detail: str, retry_ms: int) -> dict[str, str | int]:
    return {"event": name, "data": json.dumps({"detail": detail}), "retry": retry_ms}


SHUTDOWN_EVENT = _end(
    "shutdown", "The server is restarting; reconnect shortly.", STREAM_RECONNECT_MILLISECONDS
)
EXPIRED_EVENT = _end(
    "shutdown", "The stream reached its maximum lifetime; reconnect.", STREAM_RECONNECT_MILLISECONDS
)
REPLACED_EVENT = _end(
    "replaced",
    "Closed: too many open streams for this account (the newest are kept).",
    STREAM_REPLACED_RETRY_MILLISECONDS,
)


class StreamSlots:
    """The open streams of each user in this process: at most ``per_user``; opening one more
    ends the oldest (its ``replaced`` event is set)."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._open: dict[uuid.UUID, OrderedDict[int, asyncio.Event]] = {}
        self._next = 0

    @contextlib.contextmanager
    def hold(self, user_id: uuid.UUID) -> Iterator[asyncio.Event]:
        """A slot for one stream while the block runs; yields the event set if it is replaced."""
        streams = self._open.setdefault(user_id, OrderedDict())
        while len(streams) >= self.per_user:
            _, oldest = streams.popitem(last=False)
            oldest.set()
        key, replaced = self._next, asyncio.Event()
        self._next += 1
        streams[key] = replaced
        try:
            yield replaced
        finally:
            streams.pop(key, None)
            if not streams:
                self._open.pop(user_id, None)

    def count(self, user_id: uuid.UUID) -> int:
        """How many streams ``user_id`` has open here."""
        return len(self._open.get(user_id, ()))


def stream_slots(request: Request) -> StreamSlots:
    """The app's StreamSlots (put into the request state by the lifespan)."""
    slots: StreamSlots = request.state.streams
    return slots


async def stream_queue(request: Request) -> Response:
    """Server-Sent Events: ``item`` events with the caller's items as they change, ``removed``
    when one leaves the list; driven by NOTIFY (polling in poll-only mode), with heartbeats."""
    user = await current_user(request)
    deps = get_deps(request)
    slots = stream_slots(request)
    changed = asyncio.Event()
    user_key = str(user.id)
    # Without LISTEN (poll-only mode) nothing is announced: no registration either.
    watch = _Watch(deps.pool, user.id, enabled=deps.listener is not None)
    ends_at = time.monotonic() + deps.settings.scribe_sse_max_lifetime_seconds

    def on_change(payload: str | None) -> None:
        watch.noticed(payload)
        if payload is None or payload == user_key:
            changed.set()

    if deps.listener is not None:
        unsubscribe = deps.listener.subscribe(ITEMS_CHANNEL, on_change)
        refresh = STREAM_REFRESH_SECONDS
    else:
        unsubscribe, refresh = (lambda: None), deps.settings.scribe_poll_seconds

    shutdown = anyio.Event()  # set by sse-starlette when the server starts shutting down

    async def events() -> AsyncIterator[dict[str, str | int]]:
        sent: dict[uuid.UUID, QueueItemOut] = {}
        try:
            with slots.hold(user.id) as replaced:
                while not (shutdown.is_set() or replaced.is_set()):
                    left = ends_at - time.monotonic()
                    if left <= 0:
                        yield EXPIRED_EVENT
                        return
                    changed.clear()
                    try:
                        await watch.renew_if_due()
                        rows = await queue_items.list_recent(deps.pool, user.id)
                    except DatabaseUnavailable:
                        # Keep the stream open (heartbeats go on) and read again at the next
                        # wake-up (the LISTEN reconnect announces itself) or poll; the outage is
                        # logged once by the HTTP layer, not by every open stream.
                        await _first_of(changed, shutdown, replaced, timeout=min(refresh, left))
                        continue
                    current = {row.id: QueueItemOut.of(row) for row in rows}
                    for event in _changes(sent, current):
                        yield event
                    sent = current
                    await _first_of(changed, shutdown, replaced, timeout=min(refresh, left))
                yield REPLACED_EVENT if replaced.is_set() else SHUTDOWN_EVENT
        finally:
            unsubscribe()
            # A client that went away cancels this generator: the row is removed all the same.
            with anyio.CancelScope(shield=True), anyio.move_on_after(UNWATCH_SECONDS):
                await watch.close()

    return EventSourceResponse(
        events(),
        ping=deps.settings.scribe_sse_heartbeat_seconds,
        shutdown_event=shutdown,
        shutdown_grace_period=STREAM_SHUTDOWN_GRACE_SECONDS,
    )


def _changes(
    sent: dict[uuid.UUID, QueueItemOut], current: dict[uuid.UUID, QueueItemOut]
) -> list[dict[str, str | int]]:
    """The events that take a client from ``sent`` to ``current``."""
    events: list[dict[str, str | int]] = [
        {"event": "item", "data": item.model_dump_json()}
        for item_id, item in current.items()
        if sent.get(item_id) != item
    ]
    events += [
        {"event": "removed", "data": json.dumps({"id": str(item_id)})}
        for item_id in sent.keys() - current.keys()
    ]
    return events


class _Watch:
    """One open stream's registration as a watcher of its user's items (their changes are
    announced only while someone watches), renewed every STREAM_REFRESH_SECONDS."""

    def __init__(self, pool: Pool, user_id: uuid.UUID, *, enabled: bool) -> None:
        self._pool = pool
        self._user_id = user_id
        self._id = uuid.uuid4()
        self._enabled = enabled
        self._registered = False
        self._renew_at = 0.0  # monotonic

    def noticed(self, payload: str | None) -> None:
        """After a LISTEN reconnect (payload None), register again at the next renewal: the
        database may have lost the row (a crash empties UNLOGGED tables)."""
        if payload is None:
            self._renew_at = 0.0

    async def renew_if_due(self) -> None:
        """Register, or renew a registration about to lapse."""
        if self._enabled and time.monotonic() >= self._renew_at:
            await queue_items.watch(self._pool, self._user_id, self._id, STREAM_WATCH_SECONDS)
            self._registered = True
            self._renew_at = time.monotonic() + STREAM_REFRESH_SECONDS

    async def close(self) -> None:
        """Unregister (when the database is away, the registration lapses by itself)."""
        if self._registered:
            with contextlib.suppress(DatabaseUnavailable):
                await queue_items.unwatch(self._pool, self._user_id, self._id)


async def _first_of(*events: asyncio.Event | anyio.Event, timeout: float) -> None:
    """Return when any of ``events`` is set, or after ``timeout`` seconds."""
    with anyio.move_on_after(timeout):
        async with anyio.create_task_group() as group:

            async def wait_for(event: asyncio.Event | anyio.Event) -> None:
                await event.wait()
                group.cancel_scope.cancel()

            for event in events:
                group.start_soon(wait_for, event)


operations = [
    Operation(
        "GET",
        "/api/queue/stream",
        "Server-Sent Events of the caller's item changes (a few per user; the oldest is ended "
        "past the limit, and each ends after a maximum lifetime: reconnect).",
        content_type="text/event-stream",
        endpoint=stream_queue,
    ),
]
