"""A database outage is logged once when it starts and once when it ends, with the count."""

from __future__ import annotations

import logging

import pytest

from scribe.db.outage import OutageLog, RequestOutcome, note_answered, note_refused
from scribe.errors import DatabaseUnavailable


def _refused() -> RequestOutcome:
    error = DatabaseUnavailable("database unavailable: ConnectionRefusedError")
    error.__cause__ = ConnectionRefusedError(111, "Connection refused")
    return RequestOutcome(refused=error)


def test_an_outage_logs_one_warning_then_one_info_with_the_refused_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="scribe.db.outage")
    outage = OutageLog()
    outage.settle(RequestOutcome(answered=True))  # healthy: nothing to say
    for _ in range(500):
        outage.settle(_refused())
    outage.settle(RequestOutcome())  # a request that never asked the database proves nothing
    outage.settle(RequestOutcome(answered=True))
    outage.settle(RequestOutcome(answered=True))
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(messages) == 2
    assert messages[0][0] == "WARNING" and "ConnectionRefusedError" in messages[0][1]
    assert messages[1][0] == "INFO" and "500 request(s) were refused" in messages[1][1]


def test_the_request_context_carries_what_repositories_and_the_handler_noted() -> None:
    outage = OutageLog()
    note_answered()  # outside a request: ignored
    with outage.watching() as outcome:
        note_answered()
        note_refused(DatabaseUnavailable())
    assert outcome.answered and outcome.refused is not None
    assert outage.refused == 1 and outage.down_since is not None
