"""The users table."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from scribe.db.pool import Pool, translated
from scribe.db.queries import sql
from scribe.errors import Conflict


@dataclass(frozen=True, slots=True)
class User:
    """A user profile row."""

    id: uuid.UUID
    email: str
    display_name: str | None
    generation_count: int
    template_count: int
    onboarded: bool
    email_template: str | None
    created_at: datetime


def _user(record: asyncpg.Record | None) -> User | None:
    return None if record is None else User(**dict(record))


@translated
async def get(pool: Pool, user_id: uuid.UUID) -> User | None:
    """The profile of ``user_id``, or None before init."""
    return _user(await pool.fetchrow(sql("get_user"), user_id))


@translated
async def create(
    pool: Pool, user_id: uuid.UUID, email: str, display_name: str | None
) -> tuple[User, bool]:
    """Create the profile if absent; return it and whether this call created it.

    Raises Conflict when the email already belongs to another user id.
    """
    try:
        created = _user(await pool.fetchrow(sql("insert_user"), user_id, email, display_name))
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("This email address is already registered to another account.") from exc
    if created is not None:
        return created, True
    existing = await get(pool, user_id)
    if existing is None:  # deleted between the two statements
        raise Conflict("The profile changed concurrently; please retry.")
    return existing, False


@translated
async def set_onboarded(pool: Pool, user_id: uuid.UUID) -> User | None:
    """Mark onboarded; None if the user has no profile."""
    return _user(await pool.fetchrow(sql("set_user_onboarded"), user_id))


@translated
async def set_template(pool: Pool, user_id: uuid.UUID, template: str) -> User | None:
    """Store the default template; None if the user has no profile."""
    return _user(await pool.fetchrow(sql("set_user_template"), user_id, template))
