"""A database outage as the queue meets it: one line per kind of failed work, one when every
kind works again; a full disk is told apart from a database that is away."""

from __future__ import annotations

import logging

import asyncpg
import pytest

from scribe.db.outage import OutageLog, RequestOutcome
from scribe.db.pool import connection_errors
from scribe.errors import DatabaseFull, DatabaseUnavailable
from scribe.queue.outage import QueueOutage


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _full() -> DatabaseFull:
    error = DatabaseFull("the database's disk is full")
    error.__cause__ = asyncpg.DiskFullError(
        'could not extend file "base/16384/16692": No space left on device'
    )
    return error


def test_each_kind_of_failed_work_logs_once_and_the_end_once_with_the_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="scribe.queue.outage")
    clock = Clock()
    outage = QueueOutage(clock)
    for _ in range(30):
        outage.failed("claim", _full())
        outage.failed("completion write", _full())
    outage.succeeded("claim")  # a claim that fits proves nothing about the completions
    outage.failed("claim", _full())  # and a kind failing again in one outage is not news
    clock.now += 12.5
    outage.succeeded("claim")
    assert outage.active
    outage.succeeded("completion write")
    assert not outage.active

    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in lines] == ["WARNING", "WARNING", "INFO"]
    assert "queue claim failed: the database's disk is full (could not extend file" in lines[0][1]
    assert "waits for free space" in lines[0][1]
    assert lines[2][1] == (
        "queue: the database stores again after 12.5 s (failed tries: claim 31,"
        " completion write 30)"
    )


def test_settled_one_lease_after_the_last_failure() -> None:
    clock = Clock()
    outage = QueueOutage(clock)
    assert outage.settled(60)
    outage.failed("lease renewal", DatabaseUnavailable("database unavailable: OSError"))
    outage.succeeded("lease renewal")
    clock.now += 59
    assert not outage.settled(60)
    clock.now += 1
    assert outage.settled(60)


async def test_a_full_disk_and_a_strained_server_are_outages_not_statement_errors() -> None:
    with pytest.raises(DatabaseFull) as full:
        async with connection_errors():
            raise asyncpg.DiskFullError("could not extend file: No space left on device")
    assert isinstance(full.value, DatabaseUnavailable)
    with pytest.raises(DatabaseUnavailable, match="PostgresIOError"):
        async with connection_errors():
            raise asyncpg.PostgresIOError("could not read block 7: Input/output error")
    with pytest.raises(asyncpg.UniqueViolationError):
        async with connection_errors():
            raise asyncpg.UniqueViolationError("duplicate key")


def test_http_refusals_for_a_full_disk_log_once_a_minute_whatever_reads_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="scribe.db.outage")
    outage = OutageLog()
    for _ in range(40):
        outage.settle(RequestOutcome(answered=True, refused=_full()))
        outage.settle(RequestOutcome(answered=True))  # a read between two refused writes
    [record] = caplog.records
    assert record.levelname == "WARNING"
    assert record.getMessage().startswith("database disk full (could not extend file")


def test_a_write_that_happened_to_fit_neither_ends_the_outage_nor_starts_another(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="scribe.queue.outage")
    clock = Clock()
    outage = QueueOutage(clock)
    for _ in range(5):
        outage.failed("checkpoint write", _full())
        clock.now += 0.5
        outage.succeeded("checkpoint write")  # an update that fitted in its page
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    clock.now += 3
    outage.succeeded("lease renewal")  # any work, once quiet for long enough
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
    assert "(failed tries: checkpoint write 5)" in caplog.records[1].getMessage()
