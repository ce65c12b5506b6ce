"""Pacing: one pacer per provider account, sized from the provider's own rate-limit headers.

A ``Pacer`` holds token buckets (requests, and input/output tokens where the provider meters
them), each refilled continuously at ``limit`` per minute up to ``limit`` (how Anthropic and the
OpenAI-compatible servers replenish). Nothing is configured: until the first response tells the
limits, one call at a time goes out (the probe); after that every response re-sizes the buckets
from its ``anthropic-ratelimit-*`` / ``x-ratelimit-*`` headers. A caller reserves the estimated
cost of its request before sending (``acquire``) and the pacer reconciles the actual usage after
(``settle``). A 429 empties the bucket that ran out and blocks the pacer until the reset the
provider names (``rate_limited``); the client then asks again: waiting is not a failure.

Several processes share one account: each process's pacer takes ``1/share`` of the limits, where
``share`` is the number of processes that used the account lately, serve-only processes
included (``Pacers.set_shares``, kept current by ``scribe.clients.sharing`` through the
``provider_users`` table; see docs/architecture.md, "Provider pacing"). The account-wide
``remaining`` header also caps the local level, so a process that under-counts others still backs
off.

The pacer is the account's one provider-state record: besides the buckets and the 429 block it
holds the circuit breaker's state (``state``: up/down, consecutive faults, next probe; driven by
``scribe.clients.providers.ProviderBreakers``) and the pause: authentication and quota-exhausted
errors ``pause`` the account, and its callers get a ``ProviderPaused`` (an upstream-unavailable
error naming the account) until the pause ends, with one log line per pause and a /health
detail.

Waiting for the pacer is not the step's time: inside a metered step (``pacing_meter``) the
step's timeout is held while a caller waits here, and a wait that would pass the job's deadline
is an ``UpstreamUnavailable`` at once (the item waits in the queue, no attempt charged).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from scribe.clients.ratelimits import Limit, parse_limits
from scribe.errors import ProviderPaused, UpstreamRejected, UpstreamUnavailable

log = logging.getLogger(__name__)

# A 429 without any reset or retry-after blocks this long (the providers' windows are a minute).
DEFAULT_BLOCK_SECONDS = 5.0
# A paused provider (bad key, no credit) is tried again after this long by one caller.
PAUSE_SECONDS = 60.0
MIN_RECORDED_WAIT = 0.001  # shorter waits are the lock's hand-over, not pacing


@dataclass
class ProviderState:
    """The circuit breaker's part of an account record (see scribe.clients.providers)."""

    provider: str  # the account key (``anthropic:claude-sonnet``, ``exa``)
    up: bool = True
    failures: int = 0  # consecutive faults
    reason: str | None = None
    since: datetime = field(default_factory=lambda: datetime.now(UTC))
    next_probe_at: float = 0.0  # clock() time after which a call may probe again
    probe_wait: float = 0.0  # the current wait between probes (doubles while down)
    probing: bool = False  # a probe call is out
    carrier_due: float = 0.0  # clock() time an item released to carry the next probe is due

    def describe(self) -> str:
        """One line for logs and /health."""
        if self.up:
            return f"{self.provider} up"
        return f"{self.provider} down since {self.since.isoformat()}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Transition:
    """A breaker changed state (the runner records it in the provider_states table)."""

    state: ProviderState
    seconds_to_probe: float


@dataclass
class StepMeter:
    """The running step's pacing waits, and the step timeout they are kept out of."""

    deadline: float | None = None  # loop time no pacing wait may pass (the job's deadline)
    timeout: asyncio.Timeout | None = None  # the step's timeout, held during pacing waits
    waits: list[float] = field(default_factory=list)
    _holding: int = 0  # callers waiting in a pacer now (a step may call concurrently)
    _held_at: float = 0.0
    _held_when: float | None = None

    @property
    def waited(self) -> float:
        """Seconds the step spent waiting for pacers."""
        return sum(self.waits)

    def check(self, account: str, wait: float) -> None:
        """Refuse a wait past the job's deadline: the item waits in the queue instead."""
        if self.deadline is None:
            return
        left = self.deadline - asyncio.get_running_loop().time()
        if wait > left:
            raise UpstreamUnavailable(
                f"{account}: rate limit needs {wait:.0f}s, more than the job has left",
                provider=account,
                retry_after=wait,
            )

    def hold(self) -> None:
        """A pacing wait starts: the step timeout stops (the job deadline still holds)."""
        self._holding += 1
        timeout = self.timeout
        if self._holding > 1 or timeout is None or timeout.expired():
            return
        self._held_at = asyncio.get_running_loop().time()
        self._held_when = timeout.when()
        timeout.reschedule(self.deadline)

    def resume(self) -> None:
        """A pacing wait ended: the step timeout runs on for what it had left."""
        self._holding -= 1
        timeout = self.timeout
        if self._holding > 0 or timeout is None or timeout.expired() or self._held_when is None:
            return
        held = asyncio.get_running_loop().time() - self._held_at
        when = self._held_when + held
        timeout.reschedule(when if self.deadline is None else min(when, self.deadline))
        self._held_when = None


# The runner opens a meter around each step: pacing waits are recorded apart from the step's own
# time (step durations show provider time and queueing for the pacer separately) and are not
# counted against the step timeout.
_step_meter: ContextVar[StepMeter | None] = ContextVar("scribe_pacing_meter", default=None)


@contextmanager
def pacing_meter(deadline: float | None = None) -> Iterator[StepMeter]:
    """Meter pacing waits in this context (tasks created inside share it); set the yielded
    meter's ``timeout`` to the step's ``asyncio.Timeout`` to keep the waits out of it."""
    meter = StepMeter(deadline)
    token = _step_meter.set(meter)
    try:
        yield meter
    finally:
        _step_meter.reset(token)


@dataclass
class Bucket:
    """A token bucket: refilled continuously at ``limit`` per minute up to ``capacity`` (the
    limit itself unless a burst is capped, as arXiv's one request per 3 s); ``level`` may go
    negative (a reconciled request that used more than it reserved)."""

    limit: float
    level: float
    updated: float
    burst: float | None = None

    @property
    def capacity(self) -> float:
        """The most the bucket holds."""
        return self.limit if self.burst is None else min(self.limit, self.burst)

    def refill(self, now: float) -> None:
        """Add what the time since the last update earned, up to the capacity."""
        if now > self.updated:
            earned = (now - self.updated) * self.limit / 60.0
            self.level = min(self.capacity, self.level + earned)
            self.updated = now

    def wait(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` (capped at the capacity, so a huge request is not stuck
        forever) is available."""
        self.refill(now)
        missing = min(amount, self.capacity) - self.level
        if missing <= 0:
            return 0.0
        return missing * 60.0 / self.limit if self.limit > 0 else math.inf


@dataclass(frozen=True, slots=True)
class Cost:
    """What one request is expected to use."""

    input_tokens: int = 0
    output_tokens: int = 0

    def of(self, kind: str) -> float:
        """The amount of ``kind`` this request takes from its bucket."""
        if kind == "requests":
            return 1.0
        if kind == "input_tokens":
            return float(self.input_tokens)
        if kind == "output_tokens":
            return float(self.output_tokens)
        return float(self.input_tokens + self.output_tokens)  # "tokens": OpenAI's total


@dataclass
class Reservation:
    """What ``acquire`` took; give it back to ``settle``/``rate_limited``/``release``."""

    cost: Cost
    probe: bool
    waited: float
    done: bool = False


@dataclass
class PacerStats:
    """Counters for /metrics."""

    waited_seconds: float = 0.0
    rate_limited: int = 0  # 429s seen
    requests: int = 0


class Pacer:
    """Paces calls to one provider account (see the module docstring)."""

    def __init__(
        self,
        name: str,
        *,
        caps: Mapping[str, float] | None = None,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.caps = dict(caps or {})  # per-minute caps (settings); known before any response
        self.burst = burst  # the most a bucket holds (arXiv: 1), else the limit
        self.clock = clock
        self.buckets: dict[str, Bucket] = {}
        self.blocked_until = 0.0
        self.paused_reason: str | None = None
        self.paused_until = 0.0
        self.paused_since: datetime | None = None
        self.share = 1
        self.state = ProviderState(name)
        self.last_used = -math.inf  # clock() time of the last acquire
        self.waiting = 0  # callers in acquire now
        self.busy = 0  # requests acquired and not yet answered
        self.stats = PacerStats()
        self._lock = asyncio.Lock()
        self._probe_done = asyncio.Event()
        self._returned = asyncio.Event()  # a settle gave back part of a reservation
        self._probing = False
        self._unmetered = False  # answered without rate-limit headers: no probe needed
        self._output_seen: list[int] = []
        for kind, cap in self.caps.items():
            self._resize(kind, cap, None, clock())

    @property
    def learned(self) -> bool:
        """Whether calls may go out concurrently (limits known, or the provider sends none)."""
        return bool(self.buckets) or self._unmetered

    def set_share(self, share: int) -> None:
        """This process's part of the account is ``1/share`` (processes using it)."""
        share = max(1, share)
        if share == self.share:
            return
        now = self.clock()
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

    async def acquire(self, cost: Cost) -> Reservation:
        """Wait until the account has room for ``cost``; reserve it. FIFO across callers.

        Raises ProviderPaused while the provider is paused (the item waits in the queue)."""
        started = self.clock()
        meter = _step_meter.get()
        self.waiting += 1
        if meter is not None:
            meter.hold()
        try:
            probe = await self._wait_for_room(cost, meter)
        finally:
            self.waiting -= 1
            if meter is not None:
                meter.resume()
        waited = self.clock() - started
        if waited >= MIN_RECORDED_WAIT:
            self.stats.waited_seconds += waited
            if meter is not None:
                meter.waits.append(waited)
        self.busy += 1
        return Reservation(cost, probe, waited)

    async def _wait_for_room(self, cost: Cost, meter: StepMeter | None) -> bool:
        """Wait for room, reserve ``cost``; whether this caller is the probe."""
        async with self._lock:
            while True:
                self._check_paused()
                if not self.learned and self._probing:
                    await self._probe_done.wait()  # the probe's answer tells the limits
                    continue
                now = self.clock()
                wait = max(0.0, self.blocked_until - now)
                for kind, bucket in self.buckets.items():
                    wait = max(wait, bucket.wait(cost.of(kind), now))
                if wait <= 0:
                    break
                if meter is not None:
                    meter.check(self.name, wait)
                await self._sleep(wait)
            now = self.clock()
            for kind, bucket in self.buckets.items():
                bucket.refill(now)
                bucket.level -= cost.of(kind)
            probe = not self.learned
            if probe:
                self._probing = True
                self._probe_done.clear()
            self.last_used = now
            self.stats.requests += 1
        return probe

    async def _sleep(self, wait: float) -> None:
        """Sleep ``wait`` seconds, or less when a settle gives capacity back meanwhile: the
        estimate reserved for a request in flight is usually more than it uses (the schema
        counts, the answer's usage may not), and a waiter sleeping past the refund leaves the
        difference unused until its wait ends."""
        self._returned.clear()
        sleeping = asyncio.ensure_future(asyncio.sleep(wait))
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
        now = self.clock()
        if actual is not None:
            for kind, bucket in self.buckets.items():
                bucket.refill(now)
                bucket.level += reservation.cost.of(kind) - actual.of(kind)
            self._output_seen = [*self._output_seen[-19:], actual.output_tokens]
            self._returned.set()
        if not self._learn(headers, now) and not self.buckets:
            self._unmetered = True
        if self.paused_reason is not None:
            log.warning("%s answers again: calls resume", self.name)
            self.paused_reason, self.paused_since = None, None
        self._finish(reservation)

    def rate_limited(
        self, reservation: Reservation, headers: Mapping[str, str] | None, retry_after: float | None
    ) -> float:
        """A 429: empty what ran out, block until the reset the provider names; the seconds."""
        now = self.clock()
        self.stats.rate_limited += 1
        limits = self._learn(headers, now)
        resets: list[float] = []
        for limit in limits:
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
        log.info("%s answered 429: calls wait %.1fs", self.name, block)
        self._finish(reservation)
        return block

    def release(self, reservation: Reservation, headers: Mapping[str, str] | None) -> None:
        """The request failed otherwise: give back the tokens it reserved (the request itself
        was sent and counts), learn from any headers."""
        now = self.clock()
        for kind, bucket in self.buckets.items():
            if kind != "requests":
                bucket.refill(now)
                bucket.level = min(bucket.capacity, bucket.level + reservation.cost.of(kind))
        self._returned.set()
        self._learn(headers, now)
        self._finish(reservation)

    def pause(self, reason: str, seconds: float = PAUSE_SECONDS, *, hint: str = "") -> None:
        """Stop calling the provider for ``seconds`` (bad key, no credit): one log line."""
        if self.paused_reason is None:
            self.paused_since = datetime.now(UTC)
            log.error(
                "%s paused: %s%s (items wait; tried again every %.0fs)",
                self.name,
                reason,
                f": {hint}" if hint else "",
                seconds,
            )
        self.paused_reason = reason[:200]
        self.paused_until = self.clock() + seconds

    def describe(self) -> str | None:
        """A /health detail when this account is paused, else None."""
        if self.paused_reason is None or self.paused_since is None:
            return None
        since = self.paused_since.isoformat(timespec="seconds").replace("+00:00", "Z")
        return f"paused since {since}: {self.paused_reason}"

    def _check_paused(self) -> None:
        if self.paused_reason is None:
            return
        left = self.paused_until - self.clock()
        if left > 0:
            raise ProviderPaused(
                f"{self.name} paused: {self.paused_reason}", retry_after=left, provider=self.name
            )
        self.paused_until = self.clock() + PAUSE_SECONDS  # this caller checks; the others wait

    def _finish(self, reservation: Reservation) -> None:
        if reservation.done:
            return
        reservation.done = True
        self.busy -= 1
        if reservation.probe:
            self._probing = False
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
            # out of it, and capping at remaining / share takes from a process that spent less
            # than the others part of what they spent.
            bucket.level = min(bucket.level, remaining)


@dataclass(frozen=True, slots=True)
class Refusal:
    """How a failed call is treated: waited out (429), retried, or the provider paused."""

    headers: Mapping[str, str] | None = None
    rate_limited: bool = False
    retry_after: float | None = None
    retryable: bool = False
    pause: str | None = None  # the reason to pause the provider (bad key, no credit)
    hint: str = ""  # for the operator, in the log only (e.g. the setting to check)
    message: str = ""  # what the error raised at the end says

    def error(self, account: str) -> UpstreamUnavailable | UpstreamRejected:
        """The error a caller gets once the pacer gives up: unavailable (try later) when the
        failure was retryable, else rejected (this request will not pass)."""
        message = self.message or f"{account} failed"
        if self.retryable:
            return UpstreamUnavailable(message, provider=account, retry_after=self.retry_after)
        return UpstreamRejected(message, provider=account)


R = TypeVar("R")
Sent = tuple[R, Mapping[str, str] | None, Cost | None]


async def send_paced(
    pacer: Pacer,
    cost: Cost,
    send: Callable[[], Awaitable[Sent[R]]],
    judge: Callable[[Exception], Refusal | None],
    *,
    max_retries: int,
) -> R:
    """Send through the pacer. ``send`` returns (result, response headers, actual usage);
    ``judge`` (the provider's one error table) says how a failure is treated (None: not the
    provider's, re-raised as is); what is not waited out or retried is raised as the judged
    ``UpstreamUnavailable`` / ``UpstreamRejected``.

    A 429 is waited out and sent again, however often (bounded by the caller's job timeout,
    never an attempt); a retryable failure is retried ``max_retries`` times with backoff (the
    SDKs' own retries are off, so that they never send into a known rate limit)."""
    retries = 0
    while True:
        reservation = await pacer.acquire(cost)
        try:
            result, headers, used = await send()
        except Exception as exc:
            refusal = judge(exc)
            if refusal is None:
                pacer.release(reservation, None)
                raise
            if refusal.rate_limited:
                pacer.rate_limited(reservation, refusal.headers, refusal.retry_after)
                continue
            pacer.release(reservation, refusal.headers)
            if refusal.pause is not None:
                pacer.pause(refusal.pause, hint=refusal.hint)
                # Not the item's fault: it waits for the provider like every item after it.
                raise ProviderPaused(
                    f"{pacer.name} paused: {refusal.pause}",
                    retry_after=PAUSE_SECONDS,
                    provider=pacer.name,
                ) from exc
            if refusal.retryable and retries < max_retries:
                retries += 1
                await asyncio.sleep(retry_pause(retries, refusal.retry_after))
                continue
            raise refusal.error(pacer.name) from exc
        except BaseException:  # cancelled (timeout): the request may have gone out
            pacer.release(reservation, None)
            raise
        pacer.settle(reservation, headers, used)
        return result


def retry_pause(retry: int, retry_after: float | None) -> float:
    """The SDKs' backoff: 0.5 s doubling to 8 s, or the server's ``retry-after`` up to 60 s."""
    if retry_after is not None and 0 <= retry_after <= 60:
        return retry_after
    jitter: float = 1 - 0.25 * random.random()
    return min(0.5 * 2.0 ** (retry - 1), 8.0) * jitter


def estimate_tokens(*texts: str) -> int:
    """Input tokens a prompt will count, estimated before sending (about 4 characters each;
    the answer's usage reconciles the difference)."""
    return sum(len(text) for text in texts) // 4 + 1


def model_family(model: str) -> str:
    """Anthropic limits per model class: ``claude-sonnet-4-6`` -> ``claude-sonnet``."""
    parts = model.split("-")
    return "-".join(parts[:2]) if len(parts) >= 2 else model


class Pacers:
    """Every pacer of the process, by account key (``anthropic:claude-sonnet``,
    ``openai:<base url>``, ``exa``, ``arxiv``)."""

    def __init__(self, caps: Mapping[str, float] | None = None) -> None:
        self._caps = dict(caps or {})
        self._pacers: dict[str, Pacer] = {}
        self.share = 1

    def get(
        self, key: str, *, caps: Mapping[str, float] | None = None, burst: float | None = None
    ) -> Pacer:
        """The pacer of ``key`` (made on first use; ``caps`` override the shared caps)."""
        pacer = self._pacers.get(key)
        if pacer is None:
            pacer = Pacer(key, caps={**self._caps, **(caps or {})}, burst=burst)
            pacer.set_share(self.share)
            self._pacers[key] = pacer
        return pacer

    def all(self) -> list[Pacer]:
        """Every pacer made so far, by key."""
        return [self._pacers[key] for key in sorted(self._pacers)]

    def set_share(self, share: int) -> None:
        """Every pacer takes ``1/share`` of its account (``share`` processes using each)."""
        for pacer in self._pacers.values():
            pacer.set_share(share)
        self.share = share

    def set_shares(self, shares: Mapping[str, int]) -> None:
        """Each named account's pacer takes ``1/shares[key]`` of it (processes using it)."""
        for key, share in shares.items():
            pacer = self._pacers.get(key)
            if pacer is not None:
                pacer.set_share(share)

    def active(self, window: float) -> list[str]:
        """The accounts this process used within ``window`` seconds, or is waiting for now."""
        return [
            pacer.name
            for pacer in self.all()
            if pacer.waiting or pacer.busy or pacer.clock() - pacer.last_used <= window
        ]

    def matching(self, name: str) -> list[Pacer]:
        """The account records of ``name``: that account, or every account of a provider
        (``anthropic`` matches ``anthropic:claude-sonnet``)."""
        return [
            pacer
            for key, pacer in sorted(self._pacers.items())
            if key == name or key.startswith(f"{name}:")
        ]

    def paused(self) -> dict[str, str]:
        """/health details of the paused accounts, by account."""
        return {
            pacer.name: detail for pacer in self.all() if (detail := pacer.describe()) is not None
        }
