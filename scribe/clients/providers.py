"""Provider health: one circuit breaker per external provider (anthropic, openai, exa, arxiv).

Why here (in ``scribe/clients``, not in the queue): provider state is a fact about the provider,
not about the queue. The queue's runner consults it before a step and reports each call's fate;
a rate-limit pacer (reading ``Retry-After``/rate-limit headers) can keep its per-provider state in
the same ``ProviderState`` records later, so there is one place that knows "can I call X now?".

A breaker is *up* until ``threshold`` consecutive provider faults (overload, 5xx, 429, timeouts,
connection errors: ``TransientStepError.provider`` is set by the client that saw them); it is
then *down* until ``next_probe_at``. The first caller after that time is the probe (the others
keep waiting, so an overloaded provider sees one request per process per probe): its success
brings the provider *up*, its failure takes it down again with a doubled wait (up to
``probe_max``). Items whose next step needs a down provider wait (released to pending, no
attempt charged): one of them per process comes back for the next probe (the "carrier"), the
others are parked for ``PARK_PROBES`` probe intervals; when the provider is back, the runner makes
every waiting item due at once, so parking costs no recovery time but saves a claim and a release
per item per probe.

State is per process; transitions are also written to the ``provider_states`` table (by the
runner, through ``scribe.db.providers``) so /health, /metrics and the ``queue_providers`` view
show them for every process. The SDKs retry on their own first (LLM_MAX_RETRIES), so one fault
reported here already stands for a few failed HTTP calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime

PROVIDERS = ("anthropic", "openai", "exa", "arxiv")
PARK_PROBES = 6  # a parked item comes back after this many longest probe intervals


@dataclass
class ProviderState:
    """What this process knows about one provider."""

    provider: str
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


class ProviderBreakers:
    """The circuit breakers of one process."""

    def __init__(
        self,
        *,
        threshold: int,
        probe_seconds: float,
        probe_max_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = threshold
        self._probe_seconds = probe_seconds
        self._probe_max = max(probe_seconds, probe_max_seconds)
        self._clock = clock
        self._states: dict[str, ProviderState] = {}

    def state(self, provider: str) -> ProviderState:
        """The state of ``provider`` (up when never seen)."""
        return self._states.setdefault(provider, ProviderState(provider))

    def states(self) -> list[ProviderState]:
        """Every provider seen so far."""
        return sorted(self._states.values(), key=lambda state: state.provider)

    def wait_for(self, provider: str | None) -> float | None:
        """Seconds until ``provider`` may be called again, or None when it may be called now
        (up, or this caller is the probe)."""
        if provider is None:
            return None
        state = self._states.get(provider)
        if state is None or state.up:
            return None
        now = self._clock()
        if now >= state.next_probe_at:
            # This caller probes; the others wait a whole probe interval (its success wakes
            # them at once; a probe that hangs that long lets the next caller probe too).
            state.probing = True
            state.next_probe_at = now + state.probe_wait
            return None
        return state.next_probe_at - now

    def release_delay(self, provider: str) -> float:
        """How long an item waiting for the down ``provider`` should wait: until the next probe
        if no other item of this process is due back for it (this one carries it), else parked
        (woken early when the provider is back)."""
        state = self.state(provider)
        now = self._clock()
        wait = max(0.0, state.next_probe_at - now)
        if state.carrier_due + max(state.probe_wait, self._probe_seconds) < now:
            state.carrier_due = now + wait
            return wait
        return max(wait, self._probe_max * PARK_PROBES)

    def record_success(self, provider: str | None) -> Transition | None:
        """A call to ``provider`` worked: it is up; the transition when it was down."""
        if provider is None:
            return None
        state = self.state(provider)
        was_down = not state.up
        state.failures = 0
        if not was_down:
            return None
        state.up, state.reason, state.probe_wait, state.probing = True, None, 0.0, False
        state.since = datetime.now(UTC)
        return Transition(state, 0.0)

    def record_failure(self, provider: str, reason: str) -> Transition | None:
        """A provider fault: counted; the transition when it (re)opens the breaker."""
        state = self.state(provider)
        now = self._clock()
        state.failures += 1
        if state.up:
            if state.failures < self._threshold:
                return None
            state.up, state.since = False, datetime.now(UTC)
            state.probe_wait = self._probe_seconds
        elif state.probing:  # the probe failed: wait longer
            state.probe_wait = min(self._probe_max, state.probe_wait * 2)
        else:
            return None  # already waiting: a call that started before the breaker opened
        state.probing = False
        state.reason = reason[:200]
        state.next_probe_at = now + state.probe_wait
        return Transition(state, state.probe_wait)


# Pacing waits (arXiv's one request per 3 s, later rate-limit pacing) are time a step spends not
# working: the runner opens a meter around each step and records the sum apart from the step's
# own time, so step durations show provider time and queueing for the pacer separately.
_pacing_meter: ContextVar[list[float] | None] = ContextVar("scribe_pacing_meter", default=None)


def record_pacing_wait(seconds: float) -> None:
    """Add ``seconds`` of pacing wait to the running step's meter (if a step is metered)."""
    meter = _pacing_meter.get()
    if meter is not None and seconds > 0:
        meter.append(seconds)


@contextmanager
def pacing_meter() -> Iterator[list[float]]:
    """Meter pacing waits in this context (tasks created inside share it): sum the list."""
    meter: list[float] = []
    token = _pacing_meter.set(meter)
    try:
        yield meter
    finally:
        _pacing_meter.reset(token)
