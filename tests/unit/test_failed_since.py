"""The failure times a re-queue may name are bounded (1970-2100) for the admin route and the
CLI alike; before, a year-1 time with a +14:00 offset could not be moved to UTC and failed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from scribe.api.admin_queue import RetryBody
from scribe.cli import build_parser
from scribe.queue.requeue import bounded_since

EDGES = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "1969-12-31T23:59:59Z",
    "2101-01-01T00:00:00Z",
    "2100-12-31T23:00:00-14:00",  # 2101 in UTC
]


def test_times_in_1970_to_2100_are_kept_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert bounded_since(datetime(2026, 5, 1, 12, tzinfo=plus_two)) == datetime(
        2026, 5, 1, 10, tzinfo=UTC
    )
    assert bounded_since(datetime(1970, 1, 1)) == datetime(1970, 1, 1, tzinfo=UTC)  # naive: UTC
    assert bounded_since(datetime(2100, 12, 31, 23, 59, tzinfo=UTC)).year == 2100


@pytest.mark.parametrize("edge", EDGES)
def test_times_outside_1970_to_2100_are_refused(edge: str) -> None:
    with pytest.raises(ValueError, match="1970-2100"):
        bounded_since(datetime.fromisoformat(edge))


@pytest.mark.parametrize("edge", EDGES)
def test_the_retry_body_refuses_them_as_a_validation_error(edge: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="1970-2100"):
        RetryBody.model_validate({"failed_since": edge})


@pytest.mark.parametrize("value", [*EDGES, "99999999999d", "9" * 30 + "s", "yesterday"])
def test_the_cli_refuses_them_with_a_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["queue", "retry", "--failed-since", value])
    assert exited.value.code == 2
    assert "1970-2100" in capsys.readouterr().err


def test_the_cli_takes_an_age_or_a_time() -> None:
    args = build_parser().parse_args(["queue", "retry", "--failed-since", "2h"])
    assert timedelta(hours=1.9) < datetime.now(UTC) - args.failed_since < timedelta(hours=2.1)
    args = build_parser().parse_args(["queue", "retry", "--failed-since", "2026-01-01T00:00"])
    assert args.failed_since == datetime(2026, 1, 1, tzinfo=UTC)
