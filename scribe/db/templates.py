"""The templates table (generated templates)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from scribe.db.pool import Pool, translated
from scribe.db.queries import sql


@dataclass(frozen=True, slots=True)
class Template:
    """A generated template row."""

    id: uuid.UUID
    user_id: uuid.UUID
    pdf_url: str
    template_text: str
    user_instructions: str
    created_at: datetime


def _template(record: asyncpg.Record | None) -> Template | None:
    return None if record is None else Template(**dict(record))


@translated
async def list_for_user(pool: Pool, user_id: uuid.UUID) -> list[Template]:
    """The user's templates, newest first."""
    return [Template(**dict(row)) for row in await pool.fetch(sql("list_templates"), user_id)]


@translated
async def get(pool: Pool, template_id: uuid.UUID, user_id: uuid.UUID) -> Template | None:
    """One of the user's templates, or None."""
    return _template(await pool.fetchrow(sql("get_template"), template_id, user_id))


async def _insert(
    db: Pool | PoolConnectionProxy,
    user_id: uuid.UUID,
    pdf_url: str,
    template_text: str,
    user_instructions: str,
    created_at: datetime | None,
) -> Template:
    record = await db.fetchrow(
        sql("insert_template"),
        uuid.uuid4(),
        user_id,
        pdf_url,
        template_text,
        user_instructions,
        created_at,
    )
    assert record is not None
    return Template(**dict(record))


@translated
async def insert(
    pool: Pool,
    *,
    user_id: uuid.UUID,
    pdf_url: str,
    template_text: str,
    user_instructions: str,
    created_at: datetime | None = None,
) -> Template:
    """Store one template for the user and return it (``created_at`` defaults to now).

    Does not touch ``users.template_count``: quota accounting belongs to template generation.
    """
    return await _insert(pool, user_id, pdf_url, template_text, user_instructions, created_at)


@translated
async def create_within_limit(
    pool: Pool,
    user_id: uuid.UUID,
    *,
    pdf_url: str,
    template_text: str,
    user_instructions: str,
    limit: int,
) -> Template | None:
    """Count the template against the user's limit and store it, atomically; None (nothing
    written) when the user is already at ``limit``."""
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(sql("claim_template_slot"), user_id, limit) is None:
            return None
        return await _insert(conn, user_id, pdf_url, template_text, user_instructions, None)
