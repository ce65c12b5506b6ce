"""SingleFlight: concurrent callers of one key share one computation, its value or its error; a
cancelled first caller leaves the others to compute for themselves."""

from __future__ import annotations

import asyncio

import pytest

from scribe.clients.cache import SingleFlight


async def test_concurrent_callers_share_one_computation() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    release = asyncio.Event()
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 42

    callers = [asyncio.create_task(flights.run("k", compute)) for _ in range(8)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*callers) == [42] * 8
    assert calls == 1 and len(flights) == 0


async def test_the_error_reaches_every_waiting_caller_and_the_next_call_computes_again() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    release = asyncio.Event()

    async def failing() -> int:
        await release.wait()
        raise ValueError("provider down")

    callers = [asyncio.create_task(flights.run("k", failing)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)

    async def working() -> int:
        return 7

    assert await flights.run("k", working) == 7


async def test_a_cancelled_first_caller_does_not_cancel_the_waiters() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    started = asyncio.Event()
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            started.set()
            await asyncio.Event().wait()  # the first caller hangs until cancelled
        return calls

    first = asyncio.create_task(flights.run("k", compute))
    await started.wait()
    waiter = asyncio.create_task(flights.run("k", compute))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await waiter == 2  # it computed itself instead of inheriting the cancellation
