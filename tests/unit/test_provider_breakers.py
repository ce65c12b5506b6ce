"""The per-account circuit breaker (scribe.clients.providers), on a fake clock."""

from __future__ import annotations

from scribe.clients.pacing import Pacers
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


def test_the_breaker_lives_in_the_accounts_one_record_and_a_provider_name_covers_its_accounts() -> (
    None
):
    clock = Clock()
    accounts = Pacers()
    sonnet = accounts.get("anthropic:claude-sonnet")
    haiku = accounts.get("anthropic:claude-haiku")
    breakers = ProviderBreakers(
        threshold=1, probe_seconds=2, probe_max_seconds=5, clock=clock, accounts=accounts
    )
    opened = breakers.record_failure("anthropic:claude-sonnet", "HTTP 529")
    assert opened is not None and opened.state is sonnet.state  # the pacer's own record
    assert not sonnet.state.up and haiku.state.up
    # A bare provider name covers its accounts: down while any of them is.
    assert breakers.wait_for("anthropic") == 2
    assert breakers.state("anthropic") is sonnet.state
    assert breakers.wait_for("anthropic:claude-haiku") is None
    clock.now += 2
    assert breakers.wait_for("anthropic") is None  # this caller probes
    closed = breakers.record_success("anthropic")
    assert closed is not None and sonnet.state.up


def test_an_account_counts_as_used_while_waiting_out_or_within_the_window() -> None:
    clock = Clock()
    accounts = Pacers()
    pacer = accounts.get("exa")
    pacer.clock = clock
    assert accounts.active(10) == []
    pacer.last_used = clock.now
    clock.now += 10
    assert accounts.active(10) == ["exa"]
    clock.now += 1
    assert accounts.active(10) == []
    pacer.busy = 1  # a request is out
    assert accounts.active(10) == ["exa"]
    accounts.set_shares({"exa": 3, "arxiv": 2})  # accounts it never made are ignored
    assert pacer.share == 3
