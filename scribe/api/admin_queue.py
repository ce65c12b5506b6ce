"""POST /api/admin/queue/retry: re-queue failed items (admins only; see scribe.queue.requeue)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator
from starlette.requests import Request
from starlette.responses import Response

from scribe.api.common import ApiModel, UtcDatetime, current_admin, json_response, parse_body
from scribe.api.openapi import Operation
from scribe.deps import get_deps
from scribe.queue.requeue import RequeueFilter, bounded_since, requeue

MAX_RETRY_IDS = 1000

StepName = Literal["template_parser", "web_scraper", "arxiv_helper", "email_composer"]


class RetryBody(ApiModel):
    """Which failed items to re-queue: every given filter must match; at least one is given."""

    ids: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=MAX_RETRY_IDS)
    user_id: uuid.UUID | None = None
    failed_since: UtcDatetime | None = None
    step: StepName | None = None

    @field_validator("failed_since")
    @classmethod
    def _bounded(cls, value: datetime | None) -> datetime | None:
        """In UTC (a time without an offset is UTC); 422 outside the years 1970-2100."""
        return None if value is None else bounded_since(value)


class RetryOut(ApiModel):
    """The items put back to pending."""

    requeued: int
    ids: list[uuid.UUID]


async def retry(request: Request) -> Response:
    """Re-queue failed items in one transaction; 400 without any filter."""
    admin = await current_admin(request)
    body = await parse_body(request, RetryBody)
    which = RequeueFilter(body.ids, body.user_id, body.failed_since, body.step)
    who = f"admin:{admin.email or admin.user_id}"
    ids = await requeue(get_deps(request).pool, which, requested_by=who)
    return json_response(RetryOut(requeued=len(ids), ids=ids))


operations = [
    Operation(
        "POST",
        "/api/admin/queue/retry",
        "Re-queue failed items by ids, user, failure time and/or failed step (admins only).",
        response=RetryOut,
        body=RetryBody,
        endpoint=retry,
    ),
]
