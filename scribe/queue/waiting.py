"""Why did this item wait? — the one place that answers it.

An item waits, uncharged, for one of three reasons, and this module holds the engine's side of
each (the provider's side is ``scribe.providers``, handed in by the composition root as the
``ProviderGate``):

1. **Its next unit's provider account is closed** (down after consecutive faults, or paused
   after refusing the key or the credit): ``ProviderGate.admit`` says so before the unit
   starts, and the item is parked (``queue_items.retry_later`` with ``waiting_for``, no
   attempt): one item per process comes back for the account's next probe, the others wait
   until the account is back (``queue_items.wake_provider_waiters``) or an operator resumes it
   (``scribe providers resume``). A parked item writes one history row per wait, not one per
   return (``retry_queue_item`` skips an unchanged wait).
2. **A unit failed for the provider's reasons** (``UpstreamUnavailable``: overload, 5xx, a 429
   longer than the job has left): ``ProviderGate.failed`` feeds the account's breaker; the item
   waits the provider's ``retry_after``, or for the account when that fault closed it.
3. **A unit waits inside its step for the account's rate limit**: not an item wait but a pacing
   wait; the step's ``StepTimer`` is passed down the call path to the account, which holds it
   while waiting (the step's timeout counts the step's own work only; the job's deadline still
   bounds it, and a wait past it is case 2). The seconds are recorded apart in the step log.

Every uncharged wait is bounded by the item's age (SCRIBE_MAX_ITEM_AGE_SECONDS).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

MIN_RECORDED_WAIT = 0.001  # shorter waits are a lock's hand-over, not waiting for an account


class Hold(Protocol):
    """Why a unit may not call its account now: the account waited for, what is wrong with it,
    and the seconds until its item should come back (it may be woken earlier)."""

    account: str
    reason: str
    seconds: float


class ProviderGate(Protocol):
    """What the engine needs of the provider accounts."""

    def admit(self, provider: str) -> Hold | None:
        """Let a unit needing ``provider`` call it now (None; it may become the account's
        probe), or park its item: the Hold says on what and for how long."""
        ...

    async def failed(self, provider: str, reason: str) -> Hold | None:
        """The unit failed for the provider's reasons: a Hold when its account is closed."""
        ...

    async def succeeded(self, provider: str) -> bool:
        """The unit's calls worked: whether that brought an account back."""
        ...


class NoProviders:
    """The gate of an engine given none (tests, tools): every account is always open."""

    def admit(self, provider: str) -> Hold | None:
        return None

    async def failed(self, provider: str, reason: str) -> Hold | None:
        return None

    async def succeeded(self, provider: str) -> bool:
        return False


@dataclass
class StepTimer:
    """A step's timeout as a timer the provider layer pauses while the step waits for an
    account (passed down the call path); the job's deadline is never paused."""

    timeout: asyncio.Timeout
    deadline: float  # loop time: the job's deadline
    waits: list[float] = field(default_factory=list)
    _holding: int = 0  # calls of this step waiting now (a step may call concurrently)
    _held_at: float = 0.0
    _held_when: float | None = None

    @property
    def waited(self) -> float:
        """Seconds the step spent waiting for accounts."""
        return sum(self.waits)

    def left(self) -> float | None:
        """Seconds the job has left."""
        return self.deadline - asyncio.get_running_loop().time()

    def hold(self) -> None:
        """A wait starts: the step's timeout stops (the job's deadline still holds)."""
        self._holding += 1
        if self._holding > 1 or self.timeout.expired():
            return
        self._held_at = asyncio.get_running_loop().time()
        self._held_when = self.timeout.when()
        self.timeout.reschedule(self.deadline)

    def resume(self, waited: float) -> None:
        """A wait of ``waited`` seconds ended: the step's timeout runs on for what it had."""
        self._holding -= 1
        if waited >= MIN_RECORDED_WAIT:
            self.waits.append(waited)
        if self._holding > 0 or self.timeout.expired() or self._held_when is None:
            return
        held = asyncio.get_running_loop().time() - self._held_at
        self.timeout.reschedule(min(self._held_when + held, self.deadline))
        self._held_when = None
