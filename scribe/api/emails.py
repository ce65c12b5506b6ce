"""/api/email: the caller's generated emails."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scribe.api.common import (
    ApiModel,
    UtcDatetime,
    current_user,
    json_response,
    parse_body,
    parse_query,
    path_uuid,
)
from scribe.api.openapi import Operation
from scribe.db import emails
from scribe.db.emails import Email
from scribe.deps import get_deps
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
    offset: int = Field(default=0, ge=0)
    include_discarded: bool = False


class DisplayedBody(ApiModel):
    """PATCH /api/email/{id}."""

    displayed: bool


_NOT_FOUND = "Email not found."


async def list_emails(request: Request) -> Response:
    """The caller's emails, newest first; hidden ones only with include_discarded."""
    user = await current_user(request)
    query = parse_query(request, ListQuery)
    rows = await emails.list_for_user(
        get_deps(request).pool,
        user.id,
        limit=query.limit,
        offset=query.offset,
        include_hidden=query.include_discarded,
    )
    return json_response([EmailOut.of(row) for row in rows])


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


routes = [
    Route("/api/email/", list_emails, methods=["GET"]),
    Route("/api/email/{email_id}", get_email, methods=["GET"]),
    Route("/api/email/{email_id}", update_email, methods=["PATCH"]),
]

operations = [
    Operation(
        "GET",
        "/api/email/",
        "The caller's emails, newest first.",
        response=EmailOut,
        response_list=True,
        query=ListQuery,
    ),
    Operation("GET", "/api/email/{email_id}", "One of the caller's emails.", response=EmailOut),
    Operation(
        "PATCH",
        "/api/email/{email_id}",
        "Show or hide one of the caller's emails.",
        response=EmailOut,
        body=DisplayedBody,
    ),
]
