"""/api/queue: batch enqueue, the caller's recent items, cancel, and a live SSE stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import anyio
from pydantic import Field, StringConstraints, field_validator
from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response

from scribe.api.common import (
    ApiModel,
    UtcDatetime,
    current_user,
    json_response,
    parse_body,
    path_uuid,
)
from scribe.api.openapi import Operation
from scribe.auth import Principal, is_admin
from scribe.db import queue_items
from scribe.db.pool import Pool
from scribe.db.queue_items import NewItem, QueueItemView, QueueQuota
from scribe.db.users import User
from scribe.deps import get_deps
from scribe.domain.templates import validate_template
from scribe.errors import DatabaseUnavailable, InvalidRequest, NotFound
from scribe.queue.listener import ITEMS_CHANNEL
from scribe.settings import Settings

RecipientName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=2, max_length=255)
]
RecipientInterest = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=2, max_length=500)
]
EmailTemplate = Annotated[str, StringConstraints(min_length=1, max_length=10000)]

MAX_BATCH = 100
MAX_IDEMPOTENCY_KEY = 255
STREAM_REFRESH_SECONDS = 30.0  # re-read even without a notification, in case one was missed
# An open stream registers its user (changes are announced only for watched users) for this long
# and renews the registration every STREAM_REFRESH_SECONDS; it lapses if its process dies.
STREAM_WATCH_SECONDS = 3 * STREAM_REFRESH_SECONDS
# On shutdown the stream sends a last event and ends itself within this time (a clean close,
# not a cancelled response); the client's EventSource reconnects to the next process.
STREAM_SHUTDOWN_GRACE_SECONDS = 5.0
STREAM_RECONNECT_MILLISECONDS = 2000
SHUTDOWN_EVENT: dict[str, str | int] = {
    "event": "shutdown",
    "data": json.dumps({"detail": "The server is restarting; reconnect shortly."}),
    "retry": STREAM_RECONNECT_MILLISECONDS,
}


class BatchItem(ApiModel):
    """One recipient of a batch."""

    recipient_name: RecipientName
    recipient_interest: RecipientInterest


class BatchBody(ApiModel):
    """POST /api/queue/batch."""

    items: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH)
    email_template: EmailTemplate

    _template = field_validator("email_template")(validate_template)


class QueueItemOut(ApiModel):
    """One row of GET /api/queue/ (and one event of the stream)."""

    id: uuid.UUID
    recipient_name: str
    status: Literal["pending", "processing", "completed", "failed"]
    position: int | None
    email_id: uuid.UUID | None
    error_message: str | None
    current_step: str | None
    created_at: UtcDatetime

    @classmethod
    def of(cls, item: QueueItemView) -> QueueItemOut:
        """The API view of a queue row; ``error_message`` only for failed items (a retried or
        re-queued item still carries its previous attempt's error, which no longer applies)."""
        view = cls.model_validate(item, from_attributes=True)
        if view.status == "failed":
            return view
        return view.model_copy(update={"error_message": None})


class BatchCreated(ApiModel):
    """201 answer of POST /api/queue/batch."""

    queue_item_ids: list[uuid.UUID]
    message: str


class MessageOut(ApiModel):
    """A plain acknowledgement."""

    message: str


def queue_quota(user: User, settings: Settings) -> QueueQuota | None:
    """The user's queue quota from the settings; None (exempt) for admins (``ADMIN_EMAILS``)."""
    if is_admin(Principal(user.id, user.email), settings.admin_emails):
        return None
    return QueueQuota(settings.scribe_queue_daily_items, settings.scribe_queue_max_pending)


def idempotency_key(request: Request) -> str | None:
    """The Idempotency-Key header, if any; 400 when it is unusable."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise InvalidRequest(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable chars.")
    return key


async def enqueue_batch(request: Request) -> Response:
    """Queue 1-100 recipients in one transaction; a repeated Idempotency-Key returns the ids of
    the first request instead of queueing again."""
    user = await current_user(request)
    body = await parse_body(request, BatchBody)
    key = idempotency_key(request)
    deps = get_deps(request)
    ids = await queue_items.enqueue(
        deps.pool,
        user.id,
        [NewItem(item.recipient_name, item.recipient_interest) for item in body.items],
        body.email_template,
        max_attempts=deps.settings.scribe_max_attempts,
        idempotency_key=key,
        quota=queue_quota(user, deps.settings),
    )
    message = f"Queued {len(ids)} email(s) for generation."
    return json_response(BatchCreated(queue_item_ids=ids, message=message), 201)


async def list_queue(request: Request) -> Response:
    """The caller's items of the last 24 hours, oldest first (cancelled ones left out); at most
    ``RECENT_ITEMS_LIMIT``: every live one, then the newest finished ones."""
    user = await current_user(request)
    rows = await queue_items.list_recent(get_deps(request).pool, user.id)
    return json_response([QueueItemOut.of(row) for row in rows])


async def cancel_item(request: Request) -> Response:
    """Cancel one of the caller's items (pending: at once; processing: at its next step); 400
    naming its status when it is no longer live (completed, failed or already cancelled), as
    the previous backend answered."""
    user = await current_user(request)
    item_id = path_uuid(request, "item_id")
    pool = get_deps(request).pool
    status = await queue_items.cancel(pool, item_id, user.id)
    if status == "cancelled":
        return json_response({"message": "Queue item cancelled."})
    if status == "processing":
        return json_response({"message": "Cancellation requested; the item stops shortly."})
    task = await queue_items.get_task(pool, item_id, user.id)
    if task is None:
        raise NotFound("Queue item not found.")
    raise InvalidRequest(f"Cannot cancel item with status '{task.status}'.")


async def stream_queue(request: Request) -> Response:
    """Server-Sent Events: ``item`` events with the caller's items as they change, ``removed``
    when one leaves the list; driven by NOTIFY (polling in poll-only mode), with heartbeats."""
    user = await current_user(request)
    deps = get_deps(request)
    changed = asyncio.Event()
    user_key = str(user.id)
    # Without LISTEN (poll-only mode) nothing is announced: no registration either.
    watch = _Watch(deps.pool, user.id, enabled=deps.listener is not None)

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
            while not shutdown.is_set():
                changed.clear()
                try:
                    await watch.renew_if_due()
                    rows = await queue_items.list_recent(deps.pool, user.id)
                except DatabaseUnavailable:
                    # Keep the stream open (heartbeats go on) and read again at the next wake-up
                    # (the LISTEN reconnect announces itself) or poll; the outage is logged
                    # once by the HTTP layer, not by every open stream.
                    await _first_of(changed, shutdown, timeout=deps.settings.scribe_poll_seconds)
                    continue
                current = {row.id: QueueItemOut.of(row) for row in rows}
                for item_id, item in current.items():
                    if sent.get(item_id) != item:
                        yield {"event": "item", "data": item.model_dump_json()}
                for item_id in sent.keys() - current.keys():
                    yield {"event": "removed", "data": json.dumps({"id": str(item_id)})}
                sent = current
                await _first_of(changed, shutdown, timeout=refresh)
            yield SHUTDOWN_EVENT
        finally:
            unsubscribe()
            await watch.close()

    return EventSourceResponse(
        events(),
        ping=deps.settings.scribe_sse_heartbeat_seconds,
        shutdown_event=shutdown,
        shutdown_grace_period=STREAM_SHUTDOWN_GRACE_SECONDS,
    )


class _Watch:
    """One open stream's registration as a watcher of its user's items (their changes are
    announced only while someone watches), renewed every STREAM_REFRESH_SECONDS."""

    def __init__(self, pool: Pool, user_id: uuid.UUID, *, enabled: bool) -> None:
        self._pool = pool
        self._user_id = user_id
        self._id = uuid.uuid4()
        self._enabled = enabled
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
            self._renew_at = time.monotonic() + STREAM_REFRESH_SECONDS

    async def close(self) -> None:
        """Unregister (when the database is away, the registration lapses by itself)."""
        if self._enabled:
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
        "POST",
        "/api/queue/batch",
        "Queue 1-100 recipients (Idempotency-Key honoured).",
        response=BatchCreated,
        status=201,
        body=BatchBody,
        headers=("Idempotency-Key",),
        endpoint=enqueue_batch,
    ),
    Operation(
        "GET",
        "/api/queue/",
        "The caller's items of the last 24 h, oldest first.",
        response=QueueItemOut,
        response_list=True,
        endpoint=list_queue,
    ),
    Operation(
        "GET",
        "/api/queue/stream",
        "Server-Sent Events of the caller's item changes.",
        content_type="text/event-stream",
        endpoint=stream_queue,
    ),
    Operation(
        "DELETE",
        "/api/queue/{item_id}",
        "Cancel one of the caller's items.",
        response=MessageOut,
        endpoint=cancel_item,
    ),
]
