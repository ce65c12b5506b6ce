"""Seeding rows (emails and templates straight into their tables: the service writes them only
through the queue's completion and template generation), and the response shapes of DESIGN §6."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

import httpx

from scribe.db.emails import Email
from scribe.db.pool import Pool
from scribe.db.templates import Template
from tests.conftest import auth_headers

UTC_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
PROFILE_KEYS = {
    "id",
    "email",
    "display_name",
    "generation_count",
    "template_count",
    "onboarded",
    "email_template",
    "created_at",
}
EMAIL_KEYS = {
    "id",
    "user_id",
    "recipient_name",
    "recipient_interest",
    "email_message",
    "template_type",
    "metadata",
    "is_confident",
    "displayed",
    "created_at",
}
TEMPLATE_KEYS = {"id", "user_id", "pdf_url", "template_text", "user_instructions", "created_at"}

_INSERT_EMAIL = """
INSERT INTO emails (id, user_id, queue_item_id, recipient_name, recipient_interest,
                    email_message, template_type, metadata, is_confident, displayed, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, COALESCE($11::timestamptz, now()))
RETURNING id, user_id, recipient_name, recipient_interest, email_message, template_type,
          metadata, is_confident, displayed, created_at
"""
# Does not touch users.template_count: quota accounting belongs to template generation.
_INSERT_TEMPLATE = """
INSERT INTO templates (id, user_id, pdf_url, template_text, user_instructions, created_at)
VALUES ($1, $2, $3, $4, $5, COALESCE($6::timestamptz, now()))
RETURNING id, user_id, pdf_url, template_text, user_instructions, created_at
"""


async def init_user(client: httpx.AsyncClient, email: str) -> tuple[uuid.UUID, dict[str, str]]:
    """Create a profile through the API; return the user id and its auth headers."""
    headers = auth_headers(email)
    response = await client.post("/api/user/init", json={}, headers=headers)
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"]), headers


async def add_email(
    pool: Pool, user_id: uuid.UUID, created_at: datetime | None = None, **overrides: Any
) -> Email:
    """Insert an email for ``user_id`` with plausible defaults."""
    values: dict[str, Any] = {
        "recipient_name": "Dr. Grace Hopper",
        "recipient_interest": "compilers",
        "email_message": "Dear Dr. Hopper, ...",
        "template_type": "research",
        "metadata": {"search_terms": ["Grace Hopper compilers"], "model": "offline"},
        "is_confident": True,
    }
    values.update(overrides)
    record = await pool.fetchrow(
        _INSERT_EMAIL,
        uuid.uuid4(),
        user_id,
        values.get("queue_item_id"),
        values["recipient_name"],
        values["recipient_interest"],
        values["email_message"],
        values["template_type"],
        values["metadata"],
        values["is_confident"],
        values.get("displayed", True),
        created_at,
    )
    assert record is not None
    return Email(**dict(record))


async def add_template(
    pool: Pool, user_id: uuid.UUID, created_at: datetime | None = None, **overrides: Any
) -> Template:
    """Insert a generated template for ``user_id`` with plausible defaults."""
    values: dict[str, Any] = {
        "pdf_url": "https://example.supabase.co/storage/v1/object/resume.pdf",
        "template_text": "Dear {{name}}, I read your work on {{interest}}.",
        "user_instructions": "Keep it short and formal.",
    }
    values.update(overrides)
    record = await pool.fetchrow(
        _INSERT_TEMPLATE,
        uuid.uuid4(),
        user_id,
        values["pdf_url"],
        values["template_text"],
        values["user_instructions"],
        created_at,
    )
    assert record is not None
    return Template(**dict(record))


def assert_email_shape(body: dict[str, Any]) -> None:
    """Every key of the email object, UUID strings, a ``Z`` timestamp."""
    assert set(body) == EMAIL_KEYS
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert str(uuid.UUID(body["user_id"])) == body["user_id"]
    assert UTC_Z.match(body["created_at"]), body["created_at"]
    assert isinstance(body["metadata"], dict)
    assert body["template_type"] in ("research", "book", "general")


def assert_template_shape(body: dict[str, Any]) -> None:
    """Every key of the template object, UUID strings, a ``Z`` timestamp."""
    assert set(body) == TEMPLATE_KEYS
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert str(uuid.UUID(body["user_id"])) == body["user_id"]
    assert UTC_Z.match(body["created_at"]), body["created_at"]
