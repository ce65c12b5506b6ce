"""/api/admin: the operator's views for the frontend's admin page (``ADMIN_EMAILS`` only).

Every route answers 403 ``Admin access required`` to anyone else, including a token without an
email; no local user row is needed. Lists are bounded by a ``limit``. The two the page reads
whole, without a limit (users, errors), default to ``SCRIBE_ADMIN_LIST_LIMIT`` rows, so they hold
every row the overview's cards count; the others have the named defaults and caps below.
"""

from __future__ import annotations

import logging
import math
import uuid
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import Field, PlainSerializer
from starlette.requests import Request
from starlette.responses import Response

from scribe.api.common import (
    ApiModel,
    UtcDatetime,
    current_admin,
    frontend_can_show,
    json_response,
    parse_query,
    path_uuid,
)
from scribe.api.openapi import Operation
from scribe.db import reports, templates, users
from scribe.db.pool import Pool
from scribe.deps import get_deps
from scribe.errors import NotFound, RequestValidationFailed

log = logging.getLogger(__name__)

QUEUE_DEFAULT_LIMIT, QUEUE_MAX_LIMIT = 500, 1000
EMAILS_DEFAULT_PER_PAGE, EMAILS_MAX_PER_PAGE = 20, 100
ACTIVITY_WEEKS = 12

IsoDate = Annotated[date, PlainSerializer(lambda value: value.isoformat(), return_type=str)]


class Overview(ApiModel):
    """GET /api/admin/overview: service-wide figures (percentages rounded to 2 places)."""

    total_users: int
    total_emails: int = Field(description="All emails, discarded ones included.")
    total_templates: int
    success_rate: float = Field(
        description="completed / (completed + failed) items * 100 (0 if none); cancelled and "
        "unfinished items count for neither."
    )
    avg_gen_time_seconds: float = Field(description="Mean completed_at - started_at (0 if none).")
    confidence_rate: float = Field(description="confident / all emails * 100 (0 if none).")
    error_count: int = Field(description="Failed queue items.")
    emails_this_week: int = Field(description="Emails created in the last 7 days.")
    active_users_this_week: int = Field(description="Distinct users with an email in 7 days.")


class AdminUser(ApiModel):
    """One row of GET /api/admin/users."""

    id: uuid.UUID
    email: str
    display_name: str | None
    generation_count: int
    template_count: int
    onboarded: bool
    created_at: UtcDatetime
    actual_email_count: int
    queue_submissions: int
    failed_count: int
    email_template: str | None


class AdminEmail(ApiModel):
    """One email in GET /api/admin/users/{id}/emails."""

    id: uuid.UUID
    recipient_name: str
    recipient_interest: str
    email_message: str
    template_type: str | None
    is_confident: bool
    metadata: dict[str, Any] | None
    created_at: UtcDatetime


class EmailPage(ApiModel):
    """GET /api/admin/users/{id}/emails: one page, ``pages = max(1, ceil(total / per_page))``."""

    items: list[AdminEmail]
    total: int
    page: int
    per_page: int
    pages: int


class AdminTemplate(ApiModel):
    """One template in GET /api/admin/users/{id}/templates."""

    id: uuid.UUID
    template_text: str
    user_instructions: str | None
    pdf_url: str | None
    created_at: UtcDatetime


class AdminQueueItem(ApiModel):
    """One item in GET /api/admin/users/{id}/queue."""

    id: uuid.UUID
    recipient_name: str
    recipient_interest: str
    status: Literal["pending", "processing", "completed", "failed", "cancelled"]
    current_step: str | None
    error_message: str | None
    started_at: UtcDatetime | None
    completed_at: UtcDatetime | None
    created_at: UtcDatetime


class WeekActivity(ApiModel):
    """One week of GET /api/admin/activity (``week`` is its Monday, UTC)."""

    week: IsoDate
    emails_generated: int
    active_users: int


class FailedItem(ApiModel):
    """One failed item of GET /api/admin/errors; ``current_step`` is the step that failed."""

    id: uuid.UUID
    user_email: str
    user_display_name: str | None
    recipient_name: str
    current_step: str | None
    error_message: str | None
    created_at: UtcDatetime
    started_at: UtcDatetime | None


class PageQuery(ApiModel):
    """?page&per_page of the emails route."""

    page: int = Field(default=1, ge=1, le=1_000_000)
    per_page: int = Field(default=EMAILS_DEFAULT_PER_PAGE, ge=1, le=EMAILS_MAX_PER_PAGE)


class WholeListQuery(ApiModel):
    """?limit of a list the page reads whole (users, errors); at most SCRIBE_ADMIN_LIST_LIMIT."""

    limit: int | None = Field(
        default=None, ge=1, description="Default and maximum: SCRIBE_ADMIN_LIST_LIMIT (10000)."
    )


class QueueQuery(ApiModel):
    """?limit of a user's queue."""

    limit: int = Field(default=QUEUE_DEFAULT_LIMIT, ge=1, le=QUEUE_MAX_LIMIT)


def percentage(part: int, whole: int) -> float:
    """``part / whole * 100`` rounded to 2 places; 0 when there is nothing to divide."""
    return round(part * 100 / whole, 2) if whole else 0.0


def page_count(total: int, per_page: int) -> int:
    """Pages of ``per_page`` needed for ``total`` rows; at least 1."""
    return max(1, math.ceil(total / per_page))


async def _known_user(request: Request, pool: Pool) -> uuid.UUID:
    """The ``user_id`` path parameter: 400 when malformed, 404 when there is no such user."""
    user_id = path_uuid(request, "user_id")
    if await users.get(pool, user_id) is None:
        raise NotFound("User not found.")
    return user_id


async def get_overview(request: Request) -> Response:
    """KPI figures of the whole service."""
    await current_admin(request)
    raw = await reports.overview(get_deps(request).pool)
    return json_response(
        Overview(
            total_users=raw.total_users,
            total_emails=raw.total_emails,
            total_templates=raw.total_templates,
            success_rate=percentage(raw.completed, raw.completed + raw.failed),
            avg_gen_time_seconds=round(raw.avg_gen_time_seconds or 0.0, 2),
            confidence_rate=percentage(raw.confident_emails, raw.total_emails),
            error_count=raw.failed,
            emails_this_week=raw.emails_this_week,
            active_users_this_week=raw.active_users_this_week,
        )
    )


def whole_list_length(request: Request) -> int:
    """The ``limit`` of a list the page reads whole: SCRIBE_ADMIN_LIST_LIMIT unless asked for
    fewer; 422 above it."""
    bound = get_deps(request).settings.scribe_admin_list_limit
    asked = parse_query(request, WholeListQuery).limit
    if asked is None:
        return bound
    if asked > bound:
        raise RequestValidationFailed(
            [
                {
                    "loc": ["query", "limit"],
                    "msg": f"Input should be less than or equal to {bound}",
                    "type": "less_than_equal",
                }
            ]
        )
    return asked


async def list_users(request: Request) -> Response:
    """Every user with their counts, most generations first; an address the frontend cannot
    parse is shown as a placeholder (see ``shown_users``)."""
    await current_admin(request)
    rows = await reports.list_users(get_deps(request).pool, limit=whole_list_length(request))
    return json_response(shown_users(rows))


def shown_users(rows: list[reports.UserSummary]) -> list[AdminUser]:
    """The rows as the page can show them: a stored address its schema rejects (accepted before
    sign-in addresses were checked) would fail the whole page, so it is replaced by
    ``placeholder_email`` and the users concerned are logged in one line."""
    shown, replaced = [], []
    for row in rows:
        user = AdminUser.model_validate(row, from_attributes=True)
        if not frontend_can_show(user.email):
            replaced.append(str(user.id))
            user = user.model_copy(update={"email": placeholder_email(user.id)})
        shown.append(user)
    if replaced:
        log.warning(
            "admin users: %d stored address(es) the frontend cannot parse shown as placeholders "
            "(users %s)",
            len(replaced),
            ", ".join(replaced[:20]) + (" …" if len(replaced) > 20 else ""),
        )
    return shown


def placeholder_email(user_id: uuid.UUID) -> str:
    """What the page shows for an address it cannot parse: says so, and stays unique."""
    return f"unreadable-address.{user_id.hex[:12]}@example.invalid"


async def user_emails(request: Request) -> Response:
    """A page of one user's emails, discarded ones included, newest first."""
    await current_admin(request)
    pool = get_deps(request).pool
    user_id = await _known_user(request, pool)
    query = parse_query(request, PageQuery)
    rows, total = await reports.user_emails(
        pool, user_id, limit=query.per_page, offset=(query.page - 1) * query.per_page
    )
    return json_response(
        EmailPage(
            items=[AdminEmail.model_validate(row, from_attributes=True) for row in rows],
            total=total,
            page=query.page,
            per_page=query.per_page,
            pages=page_count(total, query.per_page),
        )
    )


async def user_templates(request: Request) -> Response:
    """One user's generated templates, newest first."""
    await current_admin(request)
    pool = get_deps(request).pool
    user_id = await _known_user(request, pool)
    rows = await templates.list_for_user(pool, user_id)
    return json_response(
        [
            AdminTemplate(
                id=row.id,
                template_text=row.template_text,
                user_instructions=row.user_instructions,
                pdf_url=row.pdf_url,
                created_at=row.created_at,
            )
            for row in rows
        ]
    )


async def user_queue(request: Request) -> Response:
    """One user's queue items (cancelled included), newest first."""
    await current_admin(request)
    pool = get_deps(request).pool
    user_id = await _known_user(request, pool)
    query = parse_query(request, QueueQuery)
    rows = await reports.user_queue(pool, user_id, limit=query.limit)
    return json_response([AdminQueueItem.model_validate(row, from_attributes=True) for row in rows])


async def get_activity(request: Request) -> Response:
    """Emails and active users per week, the last 12 weeks, newest first."""
    await current_admin(request)
    rows = await reports.activity(get_deps(request).pool, weeks=ACTIVITY_WEEKS)
    return json_response([WeekActivity.model_validate(row, from_attributes=True) for row in rows])


async def list_errors(request: Request) -> Response:
    """Failed items, newest first, at most ``limit``."""
    await current_admin(request)
    rows = await reports.failed_items(get_deps(request).pool, limit=whole_list_length(request))
    return json_response([FailedItem.model_validate(row, from_attributes=True) for row in rows])


_ADMIN = " Admins only (ADMIN_EMAILS); 403 otherwise."

operations = [
    Operation(
        "GET",
        "/api/admin/overview",
        "Service-wide KPI figures." + _ADMIN,
        response=Overview,
        endpoint=get_overview,
    ),
    Operation(
        "GET",
        "/api/admin/users",
        "Every user with their counts, most generations first." + _ADMIN,
        response=AdminUser,
        response_list=True,
        query=WholeListQuery,
        endpoint=list_users,
    ),
    Operation(
        "GET",
        "/api/admin/users/{user_id}/emails",
        "A page of one user's emails (discarded included), newest first; 404 for an unknown "
        "user, 400 for a malformed id." + _ADMIN,
        response=EmailPage,
        query=PageQuery,
        endpoint=user_emails,
    ),
    Operation(
        "GET",
        "/api/admin/users/{user_id}/templates",
        "One user's generated templates, newest first." + _ADMIN,
        response=AdminTemplate,
        response_list=True,
        endpoint=user_templates,
    ),
    Operation(
        "GET",
        "/api/admin/users/{user_id}/queue",
        "One user's queue items (cancelled included), newest first." + _ADMIN,
        response=AdminQueueItem,
        response_list=True,
        query=QueueQuery,
        endpoint=user_queue,
    ),
    Operation(
        "GET",
        "/api/admin/activity",
        "Emails generated and active users per UTC week, the last 12 weeks, newest first." + _ADMIN,
        response=WeekActivity,
        response_list=True,
        endpoint=get_activity,
    ),
    Operation(
        "GET",
        "/api/admin/errors",
        "Failed queue items newest first, with the step that failed." + _ADMIN,
        response=FailedItem,
        response_list=True,
        query=WholeListQuery,
        endpoint=list_errors,
    ),
]
