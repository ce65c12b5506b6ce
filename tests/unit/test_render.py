"""`scribe queue` rendering: whole ids, intervals as signed seconds, any columns."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from scribe.render import format_value, render_rows

ITEM = uuid.UUID("0f8e2a6c-52b4-4d0e-9a57-3f1f8c2d9b10")


def test_an_overdue_lease_is_negative_seconds_not_minus_one_day() -> None:
    assert format_value(timedelta(seconds=-3)) == "-3s"
    assert format_value(timedelta(seconds=42)) == "42s"
    assert format_value(timedelta(days=1, seconds=1)) == "86401s"
    assert format_value(timedelta(seconds=1.25)) == "1.2s"


def test_values_of_any_type_render_on_one_line() -> None:
    assert format_value(None) == "-"
    assert format_value(ITEM) == str(ITEM)
    assert format_value(True) == "yes"
    assert format_value(Decimal("0.500")) == "0.5"
    assert format_value(2.0) == "2"
    assert format_value({"b": 1, "a": [2]}) == '{"a":[2],"b":1}'
    assert format_value("line one\n\tline two") == "line one line two"
    paris = timezone(timedelta(hours=1))
    assert format_value(datetime(2026, 1, 2, 4, 5, 6, tzinfo=paris)) == "2026-01-02 03:05:06Z"
    assert format_value(datetime(2026, 1, 2, 3, 5, 6, tzinfo=UTC)) == "2026-01-02 03:05:06Z"


def test_long_values_are_never_cut() -> None:
    error = "LLM returned HTTP 400: " + "the prompt is too long " * 20
    rows = [{"id": ITEM, "error_message": error, "lease_left": timedelta(seconds=-5)}]
    for output in (render_rows(rows, width=80), render_rows(rows, wide=True, width=80)):
        assert str(ITEM) in output and error.strip() in output and "-5s" in output
    wide = render_rows(rows, wide=True, width=80)
    assert len(wide.splitlines()) == 3  # header, rule, one line per row
    narrow = render_rows(rows, width=80)
    assert narrow.splitlines()[0] == "-[ row 1 ]-"  # too wide for 80 columns: one block per row


def test_a_table_that_fits_stays_a_table_with_whatever_columns_the_view_has() -> None:
    rows = [
        {"step": "web_scraper", "p50_seconds": Decimal("5.3"), "new_column": None},
        {"step": "arxiv_helper", "p50_seconds": Decimal("0.8"), "new_column": 7},
    ]
    lines = render_rows(rows, width=200).splitlines()
    assert lines[0].split() == ["step", "p50_seconds", "new_column"]
    assert lines[2].split() == ["web_scraper", "5.3", "-"]
    assert lines[3].split() == ["arxiv_helper", "0.8", "7"]
    assert render_rows([], width=80) == "(none)"
