"""Retry timing and the small pure pieces of the queue."""

from __future__ import annotations

import json
import random

import pytest

from scribe.emails.handler import EmailHandler
from scribe.providers.account import Timer
from scribe.queue.backoff import Backoff, truncate_error
from scribe.queue.job import Job, StopReason
from scribe.steps import STEP_NAMES, Step
from scribe.steps.models import ParsedTemplate
from scribe.steps.state import EmailState
from tests.queue_support import claimed_item


@pytest.mark.parametrize(("attempt", "low", "high"), [(1, 5, 10), (2, 10, 20), (3, 20, 40)])
def test_backoff_doubles_per_attempt_with_jitter(attempt: int, low: float, high: float) -> None:
    rng = random.Random(7)
    delays = [Backoff(base=10, cap=1000).delay(attempt, rng=rng) for _ in range(200)]
    assert all(low <= delay < high for delay in delays)
    assert len(set(delays)) > 100  # jittered, not synchronised


def test_jitter_spreads_over_the_whole_upper_half() -> None:
    rng = random.Random(11)
    factors = [Backoff(base=1, cap=1).delay(1, rng=rng) for _ in range(500)]
    assert min(factors) < 0.55 and max(factors) > 0.95


def test_backoff_is_capped() -> None:
    assert Backoff(base=5, cap=60).delay(30, rng=random.Random(1)) < 60


def test_retry_after_is_a_floor_even_above_the_cap() -> None:
    assert Backoff(base=5, cap=60).delay(1, retry_after=300, rng=random.Random(1)) == 300
    assert Backoff(base=100, cap=1000).delay(3, retry_after=1, rng=random.Random(1)) >= 200


def test_the_reapers_schedule_is_the_same_backoff_per_lost_worker() -> None:
    schedule = Backoff(base=10, cap=35).schedule(4, rng=random.Random(3))
    assert len(schedule) == 4
    assert schedule == Backoff(base=10, cap=35).schedule(4, rng=random.Random(3))  # its rng
    for delay, (low, high) in zip(
        schedule, [(5, 10), (10, 20), (17.5, 35), (17.5, 35)], strict=True
    ):
        assert low <= delay < high


def test_error_messages_fit_the_column() -> None:
    assert truncate_error("short") == "short"
    assert truncate_error("y" * 1000) == "y" * 1000
    long = truncate_error("x" * 5000)
    assert len(long) == 1000 and long.endswith("…")


def test_stronger_stop_reason_wins_and_weaker_does_not_replace_it() -> None:
    item = claimed_item(None)
    job = Job(item, item.fence("me"))
    job.request_stop(StopReason.SHUTDOWN)
    job.request_stop(StopReason.LEASE_LOST)
    job.request_stop(StopReason.CANCELLED)
    assert job.stop_reason is StopReason.LEASE_LOST


def test_email_job_resumes_after_the_checkpointed_steps_with_their_timings() -> None:
    handler = _handler()
    fresh, progress = handler.resume(claimed_item(None))
    assert progress.completed == [] and fresh.inputs.recipient_name == "Ada"
    progress.completed.append("template_parser")
    progress.timings["template_parser"] = 1.5
    saved = fresh.model_copy(
        update={
            "template_parser": ParsedTemplate(
                template_type="general", search_terms=["Ada"], placeholders=[]
            )
        }
    )
    checkpoint = handler.checkpoint(saved, progress)
    assert "Dear {{name}}" not in json.dumps(checkpoint)  # inputs come from the item
    data, resumed = handler.resume(claimed_item(checkpoint))
    assert resumed.completed == ["template_parser"] and data.parsed().search_terms == ["Ada"]
    assert resumed.timings == {"template_parser": 1.5}
    assert data.inputs.email_template == "Dear {{name}}"


def test_unreadable_checkpoint_starts_over() -> None:
    data, progress = _handler().resume(claimed_item({"completed": ["x"], "data": {"bogus": 1}}))
    assert progress.completed == [] and data.template_parser is None


async def _unused(data: EmailState, timer: Timer | None = None) -> EmailState:
    return data


def _handler() -> EmailHandler:
    return EmailHandler([Step(name, _unused) for name in STEP_NAMES], max_email_chars=20_000)
