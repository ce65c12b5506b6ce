"""/api/email: the caller's generated emails."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import Field, field_validator
from starlette.requests import Request
from starlette.responses import Response

from scribe.api.common import (
    ApiModel,
    UtcDatetime,
    current_principal,
    current_user,
    json_response,
    parse_body,
    parse_query,
    path_uuid,
    streamed_json_list,
)
from scribe.api.openapi import Operation
from scribe.api.queue import EmailTemplate, RecipientInterest, RecipientName, queue_quota
from scribe.db import emails, queue_items
from scribe.db.emails import Email
from scribe.db.queue_items import NewItem, TaskView
from scribe.deps import get_deps
from scribe.domain.templates import validate_template
from scribe.errors import NotFound


class EmailOut(ApiModel):
    """The email object of the API contract."""

    id: uuid.UUID
    user_id: uuid.UUID
    recipient_name: str
    recipient_interest: str
    email_message: str
    template_type: Literal["research", "book", "general"]
    metadata: dict[str, Any]
    is_confident: bool
    displayed: bool
    created_at: UtcDatetime

    @classmethod
    def of(cls, email: Email) -> EmailOut:
        """The API view of an email row."""
        return cls.model_validate(email, from_attributes=True)


class ListQuery(ApiModel):
    """GET /api/email/ query parameters."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    limit: int = Field(default=20, ge=1, le=1000)
    # Bounded: asyncpg cannot send a number past int8, and the answer would be 500.
    offset: int = Field(default=0, ge=0, le=2**31 - 1)
    include_discarded: bool = False


class DisplayedBody(ApiModel):
    """PATCH /api/email/{id}."""

    displayed: bool


class GenerateBody(ApiModel):
    """POST /api/email/generate."""

    email_template: EmailTemplate
    recipient_name: RecipientName
    recipient_interest: RecipientInterest

    _template = field_validator("email_template")(validate_template)


class TaskCreated(ApiModel):
    """202 answer of POST /api/email/generate."""

    task_id: uuid.UUID


class TaskStatus(ApiModel):
    """GET /api/email/status/{task_id}, in the shape of the previous (Celery) API."""

    task_id: uuid.UUID
    status: Literal["PENDING", "STARTED", "SUCCESS", "FAILURE"]
    result: dict[str, Any] | None
    error: str | None

    @classmethod
    def of(cls, task: TaskView) -> TaskStatus:
        """The status view of a queue item."""
        progress: dict[str, Any] = {
            "current_step": task.current_step,
            "step_timings": task.step_timings,
        }
        if task.status == "completed":
            result = {**progress, "email_id": str(task.email_id)}
            return cls(task_id=task.id, status="SUCCESS", result=result, error=None)
        if task.status == "processing":
            return cls(task_id=task.id, status="STARTED", result=progress, error=None)
        if task.status == "pending":
            return cls(task_id=task.id, status="PENDING", result=None, error=None)
        if task.status == "cancelled":  # an earlier attempt's error is not why it stopped
            return cls(task_id=task.id, status="FAILURE", result=None, error="Cancelled.")
        error = task.error_message or "Failed."
        return cls(task_id=task.id, status="FAILURE", result=None, error=error)


_NOT_FOUND = "Email not found."


async def list_emails(request: Request) -> Response:
    """The caller's emails, newest first; hidden ones only with include_discarded. Streamed:
    up to 1000 emails of up to SCRIBE_MAX_EMAIL_CHARS each (the frontend's export asks for
    1000) are read EMAIL_PAGE_ROWS at a time and sent one by one, never held whole."""
    user = await current_user(request)
    query = parse_query(request, ListQuery)
    pages = emails.pages_for_user(
        get_deps(request).pool,
        user.id,
        limit=query.limit,
        offset=query.offset,
        include_hidden=query.include_discarded,
    )
    return await streamed_json_list(pages, EmailOut.of)


async def get_email(request: Request) -> Response:
    """One of the caller's emails; 404 otherwise."""
    user = await current_user(request)
    email = await emails.get(get_deps(request).pool, path_uuid(request, "email_id"), user.id)
    if email is None:
        raise NotFound(_NOT_FOUND)
    return json_response(EmailOut.of(email))


async def update_email(request: Request) -> Response:
    """Show or hide one of the caller's emails."""
    user = await current_user(request)
    email_id = path_uuid(request, "email_id")
    body = await parse_body(request, DisplayedBody)
    email = await emails.set_displayed(get_deps(request).pool, email_id, user.id, body.displayed)
    if email is None:
        raise NotFound(_NOT_FOUND)
    return json_response(EmailOut.of(email))


async def generate_email(request: Request) -> Response:
    """Queue one email; 202 with the id to poll at /api/email/status/{task_id}."""
    user = await current_user(request)
    body = await parse_body(request, GenerateBody)
    deps = get_deps(request)
    [task_id] = await queue_items.enqueue(
        deps.pool,
        user.id,
        [NewItem(body.recipient_name, body.recipient_interest)],
        body.email_template,
        max_attempts=deps.settings.scribe_max_attempts,
        quota=queue_quota(await current_principal(request), deps.settings),
    )
    return json_response(TaskCreated(task_id=task_id), 202)


async def task_status(request: Request) -> Response:
    """Progress of one of the caller's generation tasks; 404 for anyone else's."""
    user = await current_user(request)
    task_id = path_uuid(request, "task_id")
    task = await queue_items.get_task(get_deps(request).pool, task_id, user.id)
    if task is None:
        raise NotFound("Task not found.")
    return json_response(TaskStatus.of(task))


# generate and status come before /api/email/{email_id}, which would otherwise shadow them.
operations = [
    Operation(
        "POST",
        "/api/email/generate",
        "Queue one email; poll its status.",
        response=TaskCreated,
        status=202,
        body=GenerateBody,
        endpoint=generate_email,
    ),
    Operation(
        "GET",
        "/api/email/status/{task_id}",
        "Progress of one generation task.",
        response=TaskStatus,
        endpoint=task_status,
    ),
    Operation(
        "GET",
        "/api/email/",
        "The caller's emails, newest first.",
        response=EmailOut,
        response_list=True,
        query=ListQuery,
        endpoint=list_emails,
    ),
    Operation(
        "GET",
        "/api/email/{email_id}",
        "One of the caller's emails.",
        response=EmailOut,
        endpoint=get_email,
    ),
    Operation(
        "PATCH",
        "/api/email/{email_id}",
        "Show or hide one of the caller's emails.",
        response=EmailOut,
        body=DisplayedBody,
        endpoint=update_email,
    ),
]
