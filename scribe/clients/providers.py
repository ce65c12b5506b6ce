"""Provider health: the circuit breaker of each provider account (anthropic per model family,
openai per base URL, exa, arxiv).

Why here (in ``scribe/clients``, not in the queue): provider state is a fact about the provider,
not about the queue. The breaker's state lives in the account's one record, its pacer
(``scribe.clients.pacing.Pacer.state``), next to the rate-limit buckets, the 429 block and the
pause: one place knows "can I call X now?". ``ProviderBreakers`` is the queue runner's view of
those records: it consults them before a step and reports each call's fate. A name is an account
key (``anthropic:claude-sonnet``, as ``UpstreamUnavailable.provider`` carries it) or a bare
provider (``anthropic``, as a step declares it), which stands for every account of it.

A breaker is *up* until ``threshold`` consecutive provider faults (overload, 5xx, 429, timeouts,
connection errors: the ``UpstreamUnavailable`` errors the clients raise); it is
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
show them for every process. The pacer retries first (LLM_MAX_RETRIES), so one fault reported
here already stands for a few failed HTTP calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from scribe.clients.pacing import Pacer, Pacers, ProviderState, Transition

PROVIDERS = ("anthropic", "openai", "exa", "arxiv")
PARK_PROBES = 6  # a parked item comes back after this many longest probe intervals


class ProviderBreakers:
    """The circuit breakers of one process, kept in its account records."""

    def __init__(
        self,
        *,
        threshold: int,
        probe_seconds: float,
        probe_max_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        accounts: Pacers | None = None,
    ) -> None:
        self._threshold = threshold
        self._probe_seconds = probe_seconds
        self._probe_max = max(probe_seconds, probe_max_seconds)
        self._clock = clock
        self._accounts = accounts if accounts is not None else Pacers()

    def state(self, provider: str) -> ProviderState:
        """The state of ``provider``: a down account of it first (up when never seen)."""
        records = self._records(provider)
        down = [pacer.state for pacer in records if not pacer.state.up]
        if down:
            return down[0]
        exact = [pacer.state for pacer in records if pacer.name == provider]
        return exact[0] if exact else self._accounts.get(provider).state

    def wait_for(self, provider: str | None) -> float | None:
        """Seconds until ``provider`` may be called again, or None when it may be called now
        (up, or this caller is the probe)."""
        if provider is None:
            return None
        down = [pacer.state for pacer in self._records(provider) if not pacer.state.up]
        if not down:
            return None
        now = self._clock()
        waits: list[float] = []
        for state in down:
            if now >= state.next_probe_at:
                # This caller probes; the others wait a whole probe interval (its success wakes
                # them at once; a probe that hangs that long lets the next caller probe too).
                state.probing = True
                state.next_probe_at = now + state.probe_wait
            else:
                waits.append(state.next_probe_at - now)
        return max(waits) if waits else None

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
        transition = None
        for pacer in self._records(provider):
            state = pacer.state
            if state.up:
                state.failures = 0
            elif state.probing or pacer.name == provider:
                state.failures = 0
                state.up, state.reason, state.probe_wait, state.probing = True, None, 0.0, False
                state.since = datetime.now(UTC)
                transition = transition or Transition(state, 0.0)
        return transition

    def record_failure(self, provider: str, reason: str) -> Transition | None:
        """A provider fault: counted; the transition when it (re)opens the breaker."""
        exact = [pacer for pacer in self._records(provider) if pacer.name == provider]
        state = exact[0].state if exact else self._accounts.get(provider).state
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

    def _records(self, provider: str) -> list[Pacer]:
        return self._accounts.matching(provider)
