"""One provider account's record: its token buckets, the limits learned from its headers, and
its one state machine.

Buckets hold requests and input/output tokens, sized from the provider's rate-limit headers
(settings may cap them lower); until the first answer tells the limits, one call goes out at a
time. A call reserves its estimated cost (``acquire``) and is reconciled after (``settle``,
``rate_limited``, ``release``). Processes sharing an account each take ``1/share`` of it.

The states (``Status``)::

    UP ──429 blocking ≥ RATE_LIMITED_SECONDS──▶ RATE_LIMITED ──block over──▶ UP
    UP ──threshold faults in a row (failed)──▶ DOWN;  any ──refused key/credit (pause)──▶ PAUSED
    DOWN/PAUSED ──reopens_at passed: one caller takes the probe (take_probe)──▶ probing
    probing ──success (succeeded)──▶ UP;  ──fault──▶ DOWN, wait doubled (up to probe_max)
    any ──operator resume (resume)──▶ UP

Only the verbs change the state (``take_probe``, ``failed``, ``succeeded``, ``pause``,
``resume``, ``park``, the pacing calls); ``condition`` and ``closed_for`` only read it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from scribe.errors import ProviderPaused, UpstreamUnavailable
from scribe.providers.buckets import Bucket, Cost
from scribe.providers.limits import Limit, parse_limits

log = logging.getLogger(__name__)

DEFAULT_BLOCK_SECONDS = 5.0  # a 429 naming no reset blocks this long (the windows are a minute)
PAUSE_SECONDS = 60.0  # a refused key or credit: one caller tries again after this long
PARK_SECONDS = 900.0  # an item waiting for a down account, not carrying its probe, parks this long
RATE_LIMITED_SECONDS = 30.0  # a wait this long for the limit is reported (health, metrics)
MIN_RECORDED_WAIT = 0.001  # shorter waits are the lock's hand-over, not pacing
MIN_WAIT = 1e-6  # shorter waits are rounding (a clock may not even move by that much)


@dataclass(frozen=True, slots=True)
class Clock:
    """The time the provider layer paces by (tests pass one they move themselves)."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


class Timer(Protocol):
    """The calling step's timeout, passed down the call path: waiting for an account holds it
    (``hold``; ``resume`` with the seconds waited), and ``left`` is what its job has left."""

    def hold(self) -> None: ...
    def resume(self, waited: float) -> None: ...
    def left(self) -> float | None: ...


class Status(StrEnum):
    """What an account is doing, as health, metrics and the provider_states table show it."""

    UP = "up"
    RATE_LIMITED = "rate_limited"  # calls wait long for the limit (a 429's block)
    DOWN = "down"  # faults in a row: one probe at a time until one works
    PAUSED = "paused"  # the provider refused the account (key, credit): tried again slowly


CLOSED = frozenset({Status.DOWN, Status.PAUSED})  # no unit starts a call (but the probe)


@dataclass(frozen=True, slots=True)
class Breaker:
    """When faults take an account down and how long it stays down between probes."""

    threshold: int = 3
    probe_seconds: float = 2.0
    probe_max_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class Condition:
    """An account's state as others see it (health, metrics, the provider_states table)."""

    account: str
    status: Status
    reason: str | None
    since: datetime
    reopens_in: float | None  # seconds until the account takes a call again (None: up)
    failures: int


@dataclass
class Reservation:
    """What ``acquire`` took; give it back to ``settle``/``rate_limited``/``release``."""

    cost: Cost
    probe: bool
    waited: float
    done: bool = False


@dataclass
class Stats:
    """Counters for /metrics (since start): seconds waited, 429s seen."""

    waited_seconds: float = 0.0
    rate_limited: int = 0


class Account:
    """One provider account (``anthropic:claude-sonnet``, ``openai:<base url>``, ``exa``,
    ``arxiv``): see the module docstring."""

    def __init__(
        self,
        name: str,
        *,
        caps: Mapping[str, float] | None = None,
        burst: float | None = None,
        breaker: Breaker | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.caps = dict(caps or {})  # per-minute caps (settings); known before any response
        self.burst = burst  # the most a bucket holds (arXiv: 1), else the limit
        self.breaker = breaker or Breaker()
        self.clock = clock or Clock()
        self.buckets: dict[str, Bucket] = {}
        self.blocked_until = 0.0  # a 429's block
        self.share = 1
        self.last_used = -math.inf  # clock time of the last acquire
        self.waiting = 0  # callers in acquire now
        self.busy = 0  # requests acquired and not yet answered
        self.stats = Stats()
        # The state machine (see the module docstring).
        self.status = Status.UP
        self.reason: str | None = None
        self.since = datetime.now(UTC)
        self.failures = 0  # consecutive faults
        self.reopens_at = 0.0  # clock time it takes a call again (closed, rate-limited)
        self.probe_wait = 0.0  # the wait between probes (doubles while down)
        self.probing = False  # a probe is out
        self.carrier_due = 0.0  # when this process's item carrying the next probe is due
        self._lock = asyncio.Lock()
        self._probe_done = asyncio.Event()
        self._returned = asyncio.Event()  # a settle gave capacity back, or the account resumed
        self._first_call_out = False
        self._unmetered = False  # answered without rate-limit headers: no first probe needed
        self._output_seen: list[int] = []
        for kind, cap in self.caps.items():
            self._resize(kind, cap, None, self.now())

    def now(self) -> float:
        """The account's clock."""
        return self.clock.monotonic()

    @property
    def learned(self) -> bool:
        """Whether calls may go out concurrently (limits known, or the provider sends none)."""
        return bool(self.buckets) or self._unmetered

    def condition(self) -> Condition:
        """The account's state now (reads only)."""
        now = self.now()
        status, reopens = self.status, max(0.0, self.reopens_at - now)
        if status is Status.RATE_LIMITED and reopens <= 0:
            status = Status.UP
        return Condition(
            self.name,
            status,
            None if status is Status.UP else self.reason,
            self.since,
            None if status is Status.UP else reopens,
            self.failures,
        )

    def closed_for(self) -> float | None:
        """Seconds until a unit may start a call on this account (None: now). A down account
        whose probe is due reads 0: ``take_probe`` lets one caller through."""
        if self.status not in CLOSED:
            return None
        return max(0.0, self.reopens_at - self.now())

    def take_probe(self) -> bool:
        """Whether this caller may call a down account now (it is the probe; the other
        callers wait a whole probe interval). True for an account that is not down."""
        now = self.now()
        if self.status not in CLOSED:
            return True
        if now < self.reopens_at:
            return False
        self.probing = True
        self.reopens_at = now + self.probe_wait
        return True

    def succeeded(self) -> bool:
        """The account's calls work: it is up; whether it was down or paused."""
        self.failures = 0
        if self.status not in CLOSED:
            return False
        self._set(Status.UP, None, 0.0)
        self.probe_wait, self.probing = 0.0, False
        log.info("%s is back", self.name)
        return True

    def failed(self, reason: str) -> bool:
        """A provider fault (overload, 5xx, timeouts): counted; whether it (re)opened the
        breaker (the account is down until the next probe)."""
        breaker = self.breaker
        self.failures += 1
        was_down = self.status in CLOSED
        if not was_down:
            if self.failures < breaker.threshold:
                return False
            self.probe_wait = breaker.probe_seconds
        elif self.probing:  # the probe failed: wait longer
            self.probe_wait = min(
                max(breaker.probe_seconds, breaker.probe_max_seconds), self.probe_wait * 2
            )
        else:
            return False  # already down: a call that started before it went down
        self.probing = False
        self.carrier_due = -math.inf  # the item that took it down carries the next probe
        self._set(Status.DOWN, reason, self.probe_wait)
        # One WARNING when it goes down; a failed probe while down is routine (INFO), so a long
        # outage is one line in the journal, not one per probe interval.
        log.log(
            logging.INFO if was_down else logging.WARNING,
            "%s %s (%s); next probe in %.0fs",
            self.name,
            "still down" if was_down else "down",
            reason,
            self.probe_wait,
        )
        return True

    def pause(self, reason: str, *, hint: str = "") -> None:
        """The provider refused the account (bad key, no credit): down at once, tried again by
        one caller every PAUSE_SECONDS; one log line per pause."""
        if self.status is not Status.PAUSED:
            log.error(
                "%s paused: %s%s (items wait; tried again every %.0fs)",
                self.name,
                reason,
                f": {hint}" if hint else "",
                PAUSE_SECONDS,
            )
        self.probing, self.probe_wait = False, PAUSE_SECONDS
        self.carrier_due = -math.inf  # the item refused carries the next try
        self._set(Status.PAUSED, reason, PAUSE_SECONDS)

    def resume(self) -> bool:
        """An operator ends the account's wait (429 block included); whether it was waiting."""
        waiting = self.condition().status is not Status.UP or self.blocked_until > self.now()
        self.blocked_until = 0.0
        for bucket in self.buckets.values():
            bucket.level = max(bucket.level, 0.0)
        self.failures, self.probing, self.probe_wait = 0, False, 0.0
        self._set(Status.UP, None, 0.0)
        self._returned.set()
        if waiting:
            log.warning("%s resumed by an operator", self.name)
        return waiting

    def park(self) -> float:
        """An item of this process stops to wait for this account: seconds until it should
        come back. Down: the first carries the next probe (due then), the others are parked
        for PARK_SECONDS (woken when the account is back or resumed); rate-limited: until the
        block ends."""
        now = self.now()
        wait = max(0.0, self.reopens_at - now, self.blocked_until - now)
        if self.status not in CLOSED:
            return wait
        if self.carrier_due + self.probe_wait < now:
            self.carrier_due = now + wait
            return wait
        return max(wait, PARK_SECONDS)

    def _set(self, status: Status, reason: str | None, reopens_in: float) -> None:
        if status is not self.status:
            self.since = datetime.now(UTC)
        self.status, self.reason = status, None if reason is None else reason[:200]
        self.reopens_at = self.now() + reopens_in

    def set_share(self, share: int) -> None:
        """This process's part of the account is ``1/share`` (processes using it)."""
        share = max(1, share)
        if share == self.share:
            return
        now = self.now()
        for bucket in self.buckets.values():
            bucket.refill(now)
            bucket.limit = bucket.limit * self.share / share
            bucket.level = min(bucket.level, bucket.capacity)
        self.share = share
        self._returned.set()  # a larger part refills faster: a waiter recomputes its wait

    def output_estimate(self, max_tokens: int) -> int:
        """Output tokens to reserve: the mean of recent answers, ``max_tokens`` before any."""
        if not self._output_seen:
            return max_tokens
        return min(max_tokens, math.ceil(sum(self._output_seen) / len(self._output_seen)))

    async def acquire(self, cost: Cost, timer: Timer | None = None) -> Reservation:
        """Wait until the account has room for ``cost``; reserve it. FIFO across callers.
        ``timer`` (the calling step's) is held while waiting; a wait past what its job has
        left is an ``UpstreamUnavailable`` at once (the item waits in the queue, uncharged).

        Raises ProviderPaused while the account is down and this caller is not its probe."""
        started = self.now()
        self.waiting += 1
        if timer is not None:
            timer.hold()
        try:
            probe = await self._wait_for_room(cost, timer)
        finally:
            self.waiting -= 1
            waited = self.now() - started
            if timer is not None:
                timer.resume(waited)
        if waited >= MIN_RECORDED_WAIT:
            self.stats.waited_seconds += waited
        self.busy += 1
        return Reservation(cost, probe, waited)

    async def _wait_for_room(self, cost: Cost, timer: Timer | None) -> bool:
        """Wait for room, reserve ``cost``; whether this caller is the first call (probe)."""
        async with self._lock:
            while True:
                self._refuse_if_down()
                if not self.learned and self._first_call_out:
                    await self._probe_done.wait()  # the first answer tells the limits
                    continue
                now = self.now()
                wait = max(0.0, self.blocked_until - now)
                for kind, bucket in self.buckets.items():
                    wait = max(wait, bucket.wait(cost.of(kind), now))
                if wait <= MIN_WAIT:
                    break
                self._note_wait(wait, timer)
                await self._sleep(wait)
            now = self.now()
            for kind, bucket in self.buckets.items():
                bucket.refill(now)
                bucket.level -= cost.of(kind)
            probe = not self.learned
            if probe:
                self._first_call_out = True
                self._probe_done.clear()
            self.last_used = now
        return probe

    def _note_wait(self, wait: float, timer: Timer | None) -> None:
        """A wait for the limit: reported when long, refused when past the job's time."""
        if wait >= RATE_LIMITED_SECONDS and self.status is Status.UP:
            self._set(Status.RATE_LIMITED, f"rate limit: calls wait {wait:.0f}s", wait)
        left = None if timer is None else timer.left()
        if left is not None and wait > left:
            raise UpstreamUnavailable(
                f"{self.name}: rate limit needs {wait:.0f}s, more than the job has left",
                provider=self.name,
                retry_after=wait,
            )

    def _refuse_if_down(self) -> None:
        if self.status in CLOSED and not self.probing and not self.take_probe():
            raise ProviderPaused(
                f"{self.name} {self.status}: {self.reason}",
                retry_after=self.reopens_at - self.now(),
                provider=self.name,
            )

    async def _sleep(self, wait: float) -> None:
        """Sleep ``wait`` seconds, or less when a settle gives capacity back meanwhile (the
        estimate reserved for a request in flight is usually more than it uses)."""
        self._returned.clear()
        sleeping = asyncio.ensure_future(self.clock.sleep(wait))
        returned = asyncio.ensure_future(self._returned.wait())
        try:
            await asyncio.wait((sleeping, returned), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            returned.cancel()

    def settle(
        self, reservation: Reservation, headers: Mapping[str, str] | None, actual: Cost | None
    ) -> None:
        """The request was answered: learn the limits from ``headers``, reconcile the usage."""
        now = self.now()
        if actual is not None:
            for kind, bucket in self.buckets.items():
                bucket.refill(now)
                bucket.level += reservation.cost.of(kind) - actual.of(kind)
            self._output_seen = [*self._output_seen[-19:], actual.output_tokens]
            self._returned.set()
        if not self._learn(headers, now) and not self.buckets:
            self._unmetered = True
        if self.status is Status.PAUSED:  # the refused account answers: it was fixed
            log.warning("%s answers again: calls resume", self.name)
            self.succeeded()
        self._finish(reservation)

    def rate_limited(
        self, reservation: Reservation, headers: Mapping[str, str] | None, retry_after: float | None
    ) -> float:
        """A 429: empty what ran out, block until the reset the provider names; the seconds."""
        now = self.now()
        self.stats.rate_limited += 1
        resets: list[float] = []
        for limit in self._learn(headers, now):
            if limit.remaining is None or limit.remaining >= reservation.cost.of(limit.kind):
                continue
            bucket = self.buckets.get(limit.kind)
            if bucket is not None:
                bucket.level = min(bucket.level, 0.0)
            if limit.reset_seconds is not None:
                resets.append(limit.reset_seconds)
        # retry-after says when this request would pass; without it, when what ran out is full.
        block = retry_after if retry_after is not None else max(resets, default=0.0)
        block = block or DEFAULT_BLOCK_SECONDS
        self.blocked_until = max(self.blocked_until, now + block)
        if block >= RATE_LIMITED_SECONDS and self.status not in CLOSED:
            self._set(Status.RATE_LIMITED, f"429: calls wait {block:.0f}s", block)
        log.info("%s answered 429: calls wait %.1fs", self.name, block)
        self._finish(reservation)
        return block

    def release(self, reservation: Reservation, headers: Mapping[str, str] | None) -> None:
        """The request failed otherwise: give back the tokens it reserved (the request itself
        was sent and counts), learn from any headers."""
        now = self.now()
        for kind, bucket in self.buckets.items():
            if kind != "requests":
                bucket.refill(now)
                bucket.level = min(bucket.capacity, bucket.level + reservation.cost.of(kind))
        self._returned.set()
        self._learn(headers, now)
        self._finish(reservation)

    def _finish(self, reservation: Reservation) -> None:
        if reservation.done:
            return
        reservation.done = True
        self.busy -= 1
        if reservation.probe:
            self._first_call_out = False
            self._probe_done.set()

    def _learn(self, headers: Mapping[str, str] | None, now: float) -> list[Limit]:
        limits = parse_limits(headers) if headers is not None else []
        for limit in limits:
            if limit.limit is not None:
                self._resize(limit.kind, limit.limit, limit.remaining, now)
        return limits

    def _resize(self, kind: str, limit: float, remaining: float | None, now: float) -> None:
        cap = self.caps.get(kind)
        if cap is not None:
            limit = min(limit, cap)
        mine = limit / self.share
        bucket = self.buckets.get(kind)
        if bucket is None:
            # A new bucket starts with this process's part of what the account has left.
            level = mine if remaining is None else min(mine, remaining / self.share)
            bucket = self.buckets[kind] = Bucket(mine, level, now, self.burst)
        bucket.refill(now)
        bucket.limit = mine
        bucket.level = min(bucket.level, bucket.capacity)
        if remaining is not None:
            # The account's remaining counts every process (and every other user of the key):
            # no process may hold more. Not divided again: what the others spent is already
            # out of it.
            bucket.level = min(bucket.level, remaining)
