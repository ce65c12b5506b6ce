"""The per-provider circuit breaker (scribe.clients.providers), on a fake clock."""

from __future__ import annotations

from scribe.clients.providers import ProviderBreakers


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _breakers(clock: Clock) -> ProviderBreakers:
    return ProviderBreakers(threshold=3, probe_seconds=2, probe_max_seconds=5, clock=clock)


def test_breaker_opens_after_threshold_consecutive_faults_only() -> None:
    clock = Clock()
    breakers = _breakers(clock)
    assert breakers.record_failure("anthropic", "529") is None
    assert breakers.record_failure("anthropic", "529") is None
    assert breakers.record_success("anthropic") is None  # a success resets the count
    for _ in range(2):
        breakers.record_failure("anthropic", "529")
    opened = breakers.record_failure("anthropic", "HTTP 529: Overloaded")
    assert opened is not None and not opened.state.up and opened.seconds_to_probe == 2
    assert breakers.wait_for("anthropic") == 2
    assert breakers.wait_for("exa") is None  # other providers keep running
    assert breakers.wait_for(None) is None


def test_one_probe_per_window_backs_off_doubling_to_the_cap_and_success_closes() -> None:
    clock = Clock()
    breakers = _breakers(clock)
    for _ in range(3):
        breakers.record_failure("exa", "HTTP 503")
    waits = []
    for _ in range(3):
        clock.now = breakers.state("exa").next_probe_at
        assert breakers.wait_for("exa") is None  # this caller probes
        assert breakers.wait_for("exa") == breakers.state("exa").probe_wait  # the others wait
        failed = breakers.record_failure("exa", "HTTP 503")
        assert failed is not None
        waits.append(failed.seconds_to_probe)
    assert waits == [4, 5, 5]
    # A call that started before the breaker opened fails late: no change.
    assert breakers.record_failure("exa", "HTTP 503") is None
    clock.now = breakers.state("exa").next_probe_at
    assert breakers.wait_for("exa") is None
    closed = breakers.record_success("exa")
    assert closed is not None and closed.state.up
    assert breakers.wait_for("exa") is None


def test_one_waiting_item_carries_the_next_probe_the_others_are_parked() -> None:
    clock = Clock()
    breakers = _breakers(clock)
    for _ in range(3):
        breakers.record_failure("openai", "HTTP 529")
    assert breakers.release_delay("openai") == 2  # back for the probe
    assert breakers.release_delay("openai") == 30  # parked: 6 x the longest probe interval
    clock.now += 5  # the carrier did not show up (taken by another process): a new one
    assert breakers.release_delay("openai") == 0
