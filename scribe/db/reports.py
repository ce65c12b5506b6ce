"""Read-only reports across all users, for the admin API (``GET /api/admin/*``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from scribe.db.pool import Pool, translated
from scribe.db.queries import sql


@dataclass(frozen=True, slots=True)
class Overview:
    """Raw service-wide counts; the API derives the rates from them."""

    total_users: int
    total_emails: int
    total_templates: int
    confident_emails: int
    completed: int
    failed: int
    avg_gen_time_seconds: float | None
    emails_this_week: int
    active_users_this_week: int


@dataclass(frozen=True, slots=True)
class UserSummary:
    """A user with their activity counts."""

    id: uuid.UUID
    email: str
    display_name: str | None
    generation_count: int
    template_count: int
    onboarded: bool
    created_at: datetime
    email_template: str | None
    actual_email_count: int
    queue_submissions: int
    failed_count: int


@dataclass(frozen=True, slots=True)
class EmailRow:
    """An email as the admin view shows it."""

    id: uuid.UUID
    recipient_name: str
    recipient_interest: str
    email_message: str
    template_type: str | None
    is_confident: bool
    metadata: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class QueueRow:
    """A queue item as the admin view shows it."""

    id: uuid.UUID
    recipient_name: str
    recipient_interest: str
    status: str
    current_step: str | None
    error_message: str | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WeekActivity:
    """Emails generated and distinct users in one UTC week (starting Monday)."""

    week: date
    emails_generated: int
    active_users: int


@dataclass(frozen=True, slots=True)
class FailedItem:
    """A failed queue item with its owner."""

    id: uuid.UUID
    user_email: str
    user_display_name: str | None
    recipient_name: str
    current_step: str | None
    error_message: str | None
    created_at: datetime
    started_at: datetime | None


@translated
async def overview(pool: Pool) -> Overview:
    """The service-wide counts."""
    record = await pool.fetchrow(sql("admin_overview"))
    assert record is not None  # an aggregate always returns one row
    return Overview(**dict(record))


@translated
async def list_users(pool: Pool, *, limit: int) -> list[UserSummary]:
    """Users with their counts, most generations first."""
    rows = await pool.fetch(sql("admin_list_users"), limit)
    return [UserSummary(**dict(row)) for row in rows]


@translated
async def user_emails(
    pool: Pool, user_id: uuid.UUID, *, limit: int, offset: int
) -> tuple[list[EmailRow], int]:
    """A page of the user's emails (discarded included, newest first) and their total."""
    total: int = await pool.fetchval(sql("admin_count_user_emails"), user_id)
    rows = await pool.fetch(sql("admin_list_user_emails"), user_id, limit, offset)
    return [EmailRow(**dict(row)) for row in rows], total


@translated
async def user_queue(pool: Pool, user_id: uuid.UUID, *, limit: int) -> list[QueueRow]:
    """The user's queue items, newest first."""
    rows = await pool.fetch(sql("admin_list_user_queue"), user_id, limit)
    return [QueueRow(**dict(row)) for row in rows]


@translated
async def activity(pool: Pool, *, weeks: int) -> list[WeekActivity]:
    """The last ``weeks`` UTC weeks, newest first (zeros for empty weeks)."""
    rows = await pool.fetch(sql("admin_activity"), weeks)
    return [WeekActivity(**dict(row)) for row in rows]


@translated
async def failed_items(pool: Pool, *, limit: int) -> list[FailedItem]:
    """Failed items newest first."""
    rows = await pool.fetch(sql("admin_list_errors"), limit)
    return [FailedItem(**dict(row)) for row in rows]
