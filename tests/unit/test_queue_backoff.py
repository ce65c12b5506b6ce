"""Retry timing and the small pure pieces of the queue."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest

from scribe.db.queue_items import ClaimedItem
from scribe.queue.backoff import retry_delay, truncate_error
from scribe.queue.job import Job, StopReason
from scribe.queue.runner import resume_point
from scribe.steps.models import ParsedTemplate
from scribe.steps.pipeline import dump_checkpoint


@pytest.mark.parametrize(("attempt", "low", "high"), [(1, 5, 10), (2, 10, 20), (3, 20, 40)])
def test_backoff_doubles_per_attempt_with_jitter(attempt: int, low: float, high: float) -> None:
    rng = random.Random(7)
    delays = [retry_delay(attempt, base=10, cap=1000, rng=rng) for _ in range(200)]
    assert all(low <= delay < high for delay in delays)
    assert len(set(delays)) > 100  # jittered, not synchronised


def test_backoff_is_capped() -> None:
    assert retry_delay(30, base=5, cap=60, rng=random.Random(1)) < 60


def test_retry_after_is_a_floor_even_above_the_cap() -> None:
    assert retry_delay(1, base=5, cap=60, retry_after=300, rng=random.Random(1)) == 300
    assert retry_delay(3, base=100, cap=1000, retry_after=1, rng=random.Random(1)) >= 200


def test_error_messages_fit_the_column() -> None:
    assert truncate_error("short") == "short"
    long = truncate_error("x" * 5000)
    assert len(long) == 1000 and long.endswith("…")


def test_stronger_stop_reason_wins_and_weaker_does_not_replace_it() -> None:
    item = _item(None)
    job = Job(item, item.fence("me"))
    job.request_stop(StopReason.SHUTDOWN)
    job.request_stop(StopReason.LEASE_LOST)
    job.request_stop(StopReason.CANCELLED)
    assert job.stop_reason is StopReason.LEASE_LOST


def test_resume_point_continues_after_the_checkpointed_steps() -> None:
    fresh, done = resume_point(_item(None))
    assert done == [] and fresh.inputs.recipient_name == "Ada"
    parsed = ParsedTemplate(template_type="general", search_terms=["Ada"], placeholders=[])
    saved = fresh.model_copy(update={"template_parser": parsed})
    data, done = resume_point(_item(dump_checkpoint(saved, ["template_parser"])))
    assert done == ["template_parser"] and data.parsed().search_terms == ["Ada"]
    assert data.inputs.recipient_name == "Ada"  # from the row: the checkpoint has no inputs


def test_unreadable_checkpoint_starts_over() -> None:
    data, done = resume_point(_item({"completed": ["x"], "data": {"bogus": 1}}))
    assert done == [] and data.template_parser is None


def _item(checkpoint: dict[str, Any] | None) -> ClaimedItem:
    return ClaimedItem(
        id=uuid.uuid4(),
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
