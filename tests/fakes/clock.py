"""A clock the test moves: ``monotonic`` reads it, ``sleep`` moves it instead of waiting (and
yields to the loop once, so other tasks run as they would while sleeping)."""

from __future__ import annotations

import asyncio


class FakeClock:
    """The provider layer's clock (scribe.providers.account.Clock), under the test's control."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        """The test's time."""
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Move the time on by ``seconds`` at once."""
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)
