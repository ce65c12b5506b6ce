"""A clock the test moves: ``monotonic`` reads it, ``sleep`` moves it instead of waiting (and
yields to the loop once, so other tasks run as they would while sleeping)."""

from __future__ import annotations

import asyncio

from scribe.providers.account import Clock


class FakeClock:
    """The provider layer's clock under the test's control (``clock`` is what it is given)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []
        # Looked up at each call, so that a test may wrap ``sleep``.
        self.clock = Clock(lambda: self.now, lambda seconds: self.sleep(seconds))

    async def sleep(self, seconds: float) -> None:
        """Move the time on by ``seconds`` at once."""
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)
