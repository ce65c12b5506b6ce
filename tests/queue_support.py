"""Helpers for the queue tests: users, items, rows, waiting with a deadline, worker processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from scribe.db import queue_items, users
from scribe.db.pool import Pool
from scribe.db.queue_items import ClaimedItem, NewItem

REPO = Path(__file__).resolve().parent.parent


async def create_user(pool: Pool, email: str | None = None) -> uuid.UUID:
    """A user profile to own items."""
    user_id = uuid.uuid4()
    await users.create(pool, user_id, email or f"{user_id.hex[:10]}@uni.edu", None)
    return user_id


async def enqueue(
    pool: Pool,
    user_id: uuid.UUID,
    interests: Sequence[str],
    *,
    max_attempts: int = 3,
    template: str = "Dear {{name}}, I enjoyed your work.",
) -> list[uuid.UUID]:
    """Queue one item per interest (a test-step Behaviour or plain text)."""
    items = [NewItem(f"Recipient {n}", interest) for n, interest in enumerate(interests)]
    return await queue_items.enqueue(pool, user_id, items, template, max_attempts=max_attempts)


async def item_rows(pool: Pool, ids: Sequence[uuid.UUID] | None = None) -> dict[uuid.UUID, Any]:
    """queue_items rows by id (all of them without ``ids``)."""
    if ids is None:
        rows = await pool.fetch("SELECT * FROM queue_items")
    else:
        rows = await pool.fetch("SELECT * FROM queue_items WHERE id = any($1::uuid[])", list(ids))
    return {row["id"]: row for row in rows}


async def email_count(pool: Pool) -> int:
    """How many emails exist."""
    count: int = await pool.fetchval("SELECT count(*) FROM emails")
    return count


async def status_counts(pool: Pool) -> dict[str, int]:
    """Items per status."""
    rows = await pool.fetch("SELECT status, count(*) AS n FROM queue_items GROUP BY status")
    return {row["status"]: row["n"] for row in rows}


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, timeout: float, message: str = "condition"
) -> None:
    """Re-check ``check`` every 20 ms until true; AssertionError past ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(0.02)


def spawn_worker(dsn: str, tmp: Path, *options: str) -> subprocess.Popen[bytes]:
    """Start ``python -m tests.queue_worker`` (stderr kept in ``tmp``)."""
    log_dir = tmp / "steps"
    log_dir.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with (tmp / f"worker-{time.monotonic_ns()}.err").open("wb") as stderr:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.queue_worker",
                "--dsn",
                dsn,
                "--log-dir",
                str(log_dir),
                "--data-dir",
                str(tmp / "data"),
                *options,
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


async def wait_exit(process: subprocess.Popen[bytes], timeout: float) -> int:
    """Wait (without blocking the loop) for a process to exit; its return code."""
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"worker {process.pid} did not exit within {timeout}s")
        await asyncio.sleep(0.02)
    return process.returncode


async def item_history(pool: Pool, item_id: uuid.UUID) -> list[dict[str, Any]]:
    """The history of one item (the queue_item_history view), oldest first: a claim before its
    steps before how it ended."""
    rows = await pool.fetch(
        "SELECT at, kind, claim, step, seconds, wait_seconds, reason, error, owner"
        " FROM queue_item_history WHERE item_id = $1"
        " ORDER BY at, CASE kind WHEN 'claim' THEN 0 WHEN 'step' THEN 1 ELSE 2 END",
        item_id,
    )
    return [dict(row) for row in rows]


def claimed_item(checkpoint: dict[str, Any] | None = None) -> ClaimedItem:
    """A claimed email item that is in no database (first claim, no attempts yet)."""
    return ClaimedItem(
        id=uuid.uuid4(),
        kind="email",
        user_id=uuid.uuid4(),
        recipient_name="Ada",
        recipient_interest="engines",
        email_template="Dear {{name}}",
        claims=1,
        attempts=0,
        max_attempts=3,
        checkpoint=checkpoint,
        cancel_requested=False,
    )
