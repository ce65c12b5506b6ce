"""The LISTEN connection of a process (scribe/queue/listener.py) against the real database:
fan-out by channel, the "you may have missed something" after every (re)connect, reconnecting
after a dropped connection or a failed self-ping, and a quiet log during an outage."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable

import pytest

from scribe.db.listen import ListenConnection
from scribe.db.pool import Pool
from scribe.errors import DatabaseUnavailable
from scribe.queue.listener import (
    CANCEL_CHANNEL,
    ITEMS_CHANNEL,
    WAKE_CHANNEL,
    Listener,
    running_listener,
)
from tests.queue_support import wait_until

SUBSCRIBED = (WAKE_CHANNEL, CANCEL_CHANNEL, ITEMS_CHANNEL)


def heard(listener: Listener) -> dict[str, list[str | None]]:
    """Subscribe to every channel; what each subscriber received, in order."""
    received: dict[str, list[str | None]] = {channel: [] for channel in SUBSCRIBED}
    for channel in SUBSCRIBED:
        listener.subscribe(channel, received[channel].append)
    return received


def has(
    received: list[str | None], payload: str | None, times: int = 1
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return received.count(payload) >= times

    return check


def is_true(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return condition()

    return check


async def notify(pool: Pool, channel: str, payload: str) -> None:
    await pool.execute("SELECT pg_notify($1, $2)", channel, payload)


async def terminate_listener(pool: Pool) -> int:
    """End the listener's server process (its last statement was a LISTEN)."""
    terminated: int = await pool.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
    )
    return terminated


async def test_each_subscriber_hears_its_own_channel_and_a_reconnect_notice_first(
    pool: Pool, database_url: str
) -> None:
    listener = Listener(database_url, ping_seconds=3600)
    received = heard(listener)
    async with running_listener(listener):
        await asyncio.wait_for(listener.connected.wait(), 5)
        await notify(pool, ITEMS_CHANNEL, "user-1")
        await notify(pool, CANCEL_CHANNEL, "item-1")
        await notify(pool, WAKE_CHANNEL, "")
        await wait_until(has(received[WAKE_CHANNEL], ""), timeout=5)

    assert received == {
        WAKE_CHANNEL: [None, ""],
        CANCEL_CHANNEL: [None, "item-1"],
        ITEMS_CHANNEL: [None, "user-1"],
    }


async def test_an_unsubscribed_subscriber_hears_nothing_more(pool: Pool, database_url: str) -> None:
    listener = Listener(database_url, ping_seconds=3600)
    kept: list[str | None] = []
    dropped: list[str | None] = []
    listener.subscribe(ITEMS_CHANNEL, kept.append)
    unsubscribe = listener.subscribe(ITEMS_CHANNEL, dropped.append)
    async with running_listener(listener):
        await asyncio.wait_for(listener.connected.wait(), 5)
        await notify(pool, ITEMS_CHANNEL, "first")
        await wait_until(has(dropped, "first"), timeout=5)
        unsubscribe()
        await notify(pool, ITEMS_CHANNEL, "second")
        await wait_until(has(kept, "second"), timeout=5)

    assert kept == [None, "first", "second"]
    assert dropped == [None, "first"]


async def test_a_dropped_connection_is_replaced_and_subscribers_told_to_look_again(
    pool: Pool, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    listener = Listener(database_url, ping_seconds=3600)
    received = heard(listener)
    with caplog.at_level(logging.INFO, logger="scribe.queue.listener"):
        async with running_listener(listener):
            await asyncio.wait_for(listener.connected.wait(), 5)
            assert listener.reconnects == 0
            assert await terminate_listener(pool) == 1
            await wait_until(is_true(lambda: listener.reconnects == 1), timeout=10)
            await wait_until(has(received[WAKE_CHANNEL], None, times=2), timeout=10)
            await notify(pool, WAKE_CHANNEL, "after")
            await wait_until(has(received[WAKE_CHANNEL], "after"), timeout=5)

    assert received[WAKE_CHANNEL] == [None, None, "after"]
    assert received[CANCEL_CHANNEL] == received[ITEMS_CHANNEL] == [None, None]
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (logging.WARNING, "LISTEN connection lost; reconnecting") in messages
    assert (logging.INFO, "LISTEN connection (re)established") in messages


async def test_a_clean_first_connect_logs_nothing_and_healthy_pings_keep_the_connection(
    database_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = 0
    ping = ListenConnection.ping

    async def counted(self: ListenConnection, channel: str, payload: str) -> None:
        nonlocal pings
        pings += 1
        await ping(self, channel, payload)

    monkeypatch.setattr(ListenConnection, "ping", counted)
    listener = Listener(database_url, ping_seconds=0.01, ping_timeout_seconds=5)
    with caplog.at_level(logging.DEBUG, logger="scribe.queue.listener"):
        async with running_listener(listener):
            await asyncio.wait_for(listener.connected.wait(), 5)
            await wait_until(is_true(lambda: pings >= 5), timeout=10)
            assert listener.reconnects == 0
            assert listener.connected.is_set()
    assert [r.getMessage() for r in caplog.records] == []


async def test_a_connection_that_stops_answering_its_self_ping_is_replaced(
    pool: Pool,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ping = ListenConnection.ping
    stalled: list[ListenConnection] = []

    async def stall_the_first(self: ListenConnection, channel: str, payload: str) -> None:
        if not stalled or stalled[0] is self:
            stalled[:1] = [self]
            await asyncio.sleep(3600)  # a connection that silently stopped delivering
        await ping(self, channel, payload)

    monkeypatch.setattr(ListenConnection, "ping", stall_the_first)
    listener = Listener(database_url, ping_seconds=0.01, ping_timeout_seconds=0.2)
    received = heard(listener)
    with caplog.at_level(logging.WARNING, logger="scribe.queue.listener"):
        async with running_listener(listener):
            await wait_until(is_true(lambda: listener.reconnects == 1), timeout=10)
            await asyncio.wait_for(listener.connected.wait(), 5)
            await notify(pool, ITEMS_CHANNEL, "after")
            await wait_until(has(received[ITEMS_CHANNEL], "after"), timeout=5)

    assert received[ITEMS_CHANNEL] == [None, None, "after"]
    messages = [r.getMessage() for r in caplog.records]
    assert messages[:2] == [
        "LISTEN self-ping failed: TimeoutError",
        "LISTEN connection lost; reconnecting",
    ]


async def test_an_outage_logs_its_first_failed_connect_as_a_warning_and_the_retries_quietly(
    database_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = 0
    open_connection = ListenConnection.open

    async def counted(*args: object, **kwargs: object) -> ListenConnection:
        nonlocal attempts
        attempts += 1
        return await open_connection(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ListenConnection, "open", counted)
    missing = database_url.rsplit("/", 1)[0] + "/no_such_database"
    listener = Listener(missing, max_reconnect_delay=0.3)

    def failed_connects() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage().startswith("LISTEN connection failed")]

    with caplog.at_level(logging.DEBUG, logger="scribe.queue.listener"):
        async with running_listener(listener):
            # Four failed connects, each logged (the attempt counts as it starts, its line comes
            # when it has failed).
            logged = is_true(lambda: attempts >= 4 and len(failed_connects()) >= 4)
            await wait_until(logged, timeout=10)
            assert not listener.connected.is_set()
    failures = failed_connects()
    assert [r.levelno for r in failures[:4]] == [logging.WARNING] + [logging.DEBUG] * 3
    assert failures[0].getMessage().endswith("retrying in 0.1s")
    # The delay doubles up to its cap.
    assert [r.getMessage().rsplit(" ", 1)[1] for r in failures[1:4]] == ["0.2s", "0.3s", "0.3s"]
    assert listener.reconnects == 0


async def test_after_an_outage_the_connection_is_announced_and_a_new_outage_is_news_again(
    pool: Pool, database_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusals = 2  # the next connects that fail
    open_connection = ListenConnection.open

    async def flaky(*args: object, **kwargs: object) -> ListenConnection:
        nonlocal refusals
        if refusals:
            refusals -= 1
            raise DatabaseUnavailable("connection refused")
        return await open_connection(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ListenConnection, "open", flaky)
    listener = Listener(database_url, ping_seconds=3600, max_reconnect_delay=0.2)
    with caplog.at_level(logging.DEBUG, logger="scribe.queue.listener"):
        async with running_listener(listener):
            await asyncio.wait_for(listener.connected.wait(), 5)
            assert listener.reconnects == 0
            first = [(r.levelno, r.getMessage()) for r in caplog.records]
            caplog.clear()
            for lost in (1, 2):
                refusals = 1
                assert await terminate_listener(pool) == 1
                await wait_until(
                    is_true(lambda lost=lost: listener.reconnects == lost),  # type: ignore[misc]
                    timeout=10,
                )
                await asyncio.wait_for(listener.connected.wait(), 5)
            again = [(r.levelno, r.getMessage()) for r in caplog.records]

    refused = "LISTEN connection failed (connection refused); retrying in"
    assert first == [
        (logging.WARNING, f"{refused} 0.1s"),
        (logging.DEBUG, f"{refused} 0.2s"),
        (logging.INFO, "LISTEN connection (re)established"),
    ]
    # Each loss: a warning, the failed reconnect is news again (a warning), then connected.
    one_loss = [
        (logging.WARNING, "LISTEN connection lost; reconnecting"),
        (logging.WARNING, f"{refused} 0.1s"),
        (logging.INFO, "LISTEN connection (re)established"),
    ]
    assert again == one_loss * 2


async def test_a_listener_stopped_while_it_connects_leaves_no_connection_behind(
    database_url: str, pool: Pool
) -> None:
    """A service stopped at once after it started: each stop falls at another point of the
    connect and LISTEN statements; none may leave a connection open."""
    for turns in range(40):
        async with running_listener(Listener(database_url)):
            for _ in range(turns):
                await asyncio.sleep(0)
    gc.collect()  # a leaked connection would warn here (ResourceWarning: unclosed connection)

    async def none_listening() -> bool:
        query = (
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query ILIKE 'LISTEN%'"
        )
        return bool(await pool.fetchval(query) == 0)

    await wait_until(none_listening, timeout=10, message="the LISTEN connections to close")
