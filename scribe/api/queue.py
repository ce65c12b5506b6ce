"""/api/queue: batch enqueue, the caller's recent items, cancel (the live stream of them:
scribe.api.queue_stream)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator
from starlette.requests import Request
from starlette.responses import Response

from scribe.api.common import (
    ApiModel,
    UtcDatetime,
    current_principal,
    current_user,
    json_response,
    parse_body,
    path_uuid,
)
from scribe.api.openapi import Operation
from scribe.db import queue_items
from scribe.db.queue_items import NewItem, QueueItemView, QueueQuota
from scribe.deps import get_deps
from scribe.domain.templates import validate_template
from scribe.errors import InvalidRequest, NotFound
from scribe.http.auth import Principal, is_admin
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


def queue_quota(caller: Principal, settings: Settings) -> QueueQuota | None:
    """The caller's queue quota from the settings; None (exempt) for admins, by the token's
    claims (``scribe.http.auth.is_admin``), never by the email stored with the profile."""
    if is_admin(caller, settings):
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
        quota=queue_quota(await current_principal(request), deps.settings),
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
        "DELETE",
        "/api/queue/{item_id}",
        "Cancel one of the caller's items.",
        response=MessageOut,
        endpoint=cancel_item,
    ),
]
