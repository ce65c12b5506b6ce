"""``scribe demo`` follows its items to the end even when another process runs them."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from scribe import commands
from scribe.db.queue_items import QueueItemView


def _item(item_id: uuid.UUID, status: str, step: str | None) -> QueueItemView:
    return QueueItemView(
        id=item_id,
        recipient_name="Ada Lovelace",
        status=status,
        position=None,
        email_id=uuid.uuid4() if status == "completed" else None,
        error_message=None,
        current_step=step,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


async def test_watch_outlasts_a_drained_consumer_while_another_process_runs_the_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(commands, "DEMO_POLL_SECONDS", 0)
    item_id = uuid.uuid4()
    # The demo's own consumer found nothing to claim (a running server took the item) and ended.
    worker = asyncio.create_task(asyncio.sleep(0))
    await worker
    states = iter(
        [
            _item(item_id, "processing", "template_parser"),
            _item(item_id, "processing", "email_composer"),
            _item(item_id, "completed", "email_composer"),
        ]
    )

    async def items() -> dict[uuid.UUID, QueueItemView]:
        return {item_id: next(states)}

    lines: list[str] = []
    await commands.watch(items, worker, lines.append)

    assert lines == [
        "Ada Lovelace     processing template_parser",
        "Ada Lovelace     processing email_composer",
        "Ada Lovelace     completed",
    ]
