"""The emails table (reads and display flag; an email is written in its queue item's completion
transaction, by ``insert_completed``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from scribe.db.pool import Connection, Pool, connection_errors, translated
from scribe.db.queries import sql
from scribe.db.queue_items import storable

# Rows per statement when a list of emails is streamed: about what one answer holds at once (an
# email is at most SCRIBE_MAX_EMAIL_CHARS of text plus its metadata). Measured with 12 clients
# that never read a 1000-email, 54 MB answer: the service grew 30 MB with 20 rows, 63 MB with 50.
EMAIL_PAGE_ROWS = 20


@dataclass(frozen=True, slots=True)
class Email:
    """An email row."""

    id: uuid.UUID
    user_id: uuid.UUID
    recipient_name: str
    recipient_interest: str
    email_message: str
    template_type: str
    metadata: dict[str, Any]
    is_confident: bool
    displayed: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CompletedEmail:
    """What a queue item's completion writes into ``emails``."""

    email_id: uuid.UUID
    email_message: str
    template_type: str
    metadata: dict[str, Any]
    is_confident: bool


async def insert_completed(
    conn: Connection,
    email: CompletedEmail,
    *,
    queue_item_id: uuid.UUID,
    user_id: uuid.UUID,
    recipient_name: str,
    recipient_interest: str,
) -> None:
    """Store the email of a queue item being completed, link it from the item and count it for
    the user; on ``conn``, inside the queue's completion transaction."""
    async with connection_errors():
        await conn.execute(
            sql("insert_completed_email"),
            email.email_id,
            queue_item_id,
            user_id,
            recipient_name,
            recipient_interest,
            storable(email.email_message),
            email.template_type,
            storable(email.metadata),
            email.is_confident,
        )


def _email(record: asyncpg.Record | None) -> Email | None:
    return None if record is None else Email(**dict(record))


@translated
async def list_for_user(
    pool: Pool, user_id: uuid.UUID, *, limit: int, offset: int, include_hidden: bool
) -> list[Email]:
    """A page of the user's emails, newest first."""
    rows = await pool.fetch(sql("list_emails"), user_id, include_hidden, limit, offset)
    return [Email(**dict(row)) for row in rows]


@translated
async def _list_after(
    pool: Pool, user_id: uuid.UUID, last: Email, *, limit: int, include_hidden: bool
) -> list[Email]:
    rows = await pool.fetch(
        sql("list_emails_after"), user_id, include_hidden, last.created_at, last.id, limit
    )
    return [Email(**dict(row)) for row in rows]


async def pages_for_user(
    pool: Pool,
    user_id: uuid.UUID,
    *,
    limit: int,
    offset: int,
    include_hidden: bool,
    page_rows: int = EMAIL_PAGE_ROWS,
) -> AsyncGenerator[list[Email], None]:
    """The rows of ``list_for_user``, in pages of at most ``page_rows``: the first by offset,
    each next one by keyset after the last row seen. Every page is its own statement, so no
    connection is held while a slow client reads; an email stored meanwhile is newer than the
    rows still to come and does not shift them."""
    size = min(limit, page_rows)
    page = await list_for_user(
        pool, user_id, limit=size, offset=offset, include_hidden=include_hidden
    )
    remaining = limit
    while page:
        yield page
        remaining -= len(page)
        if remaining <= 0 or len(page) < size:
            return
        size = min(remaining, page_rows)
        page = await _list_after(pool, user_id, page[-1], limit=size, include_hidden=include_hidden)


@translated
async def get(pool: Pool, email_id: uuid.UUID, user_id: uuid.UUID) -> Email | None:
    """One of the user's emails, or None."""
    return _email(await pool.fetchrow(sql("get_email"), email_id, user_id))


@translated
async def set_displayed(
    pool: Pool, email_id: uuid.UUID, user_id: uuid.UUID, displayed: bool
) -> Email | None:
    """Show or hide one of the user's emails; None if it is not theirs."""
    return _email(await pool.fetchrow(sql("set_email_displayed"), email_id, user_id, displayed))
