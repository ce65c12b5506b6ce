"""An account's one state machine (scribe.providers.account) and the queue's view of the
accounts (scribe.providers.accounts), on a fake clock."""

from __future__ import annotations

from scribe.providers.account import PARK_SECONDS, PAUSE_SECONDS, Breaker, Status
from scribe.providers.accounts import Accounts
from tests.fakes.clock import FakeClock


def _accounts(clock: FakeClock, threshold: int = 3) -> Accounts:
    breaker = Breaker(threshold=threshold, probe_seconds=2, probe_max_seconds=5)
    return Accounts(breaker=breaker, clock=clock.clock)


async def test_breaker_opens_after_threshold_consecutive_faults_only() -> None:
    clock = FakeClock()
    accounts = _accounts(clock)
    assert await accounts.failed("anthropic", "529") is None
    assert await accounts.failed("anthropic", "529") is None
    assert not await accounts.succeeded("anthropic")  # a success resets the count
    for _ in range(2):
        await accounts.failed("anthropic", "529")
    hold = await accounts.failed("anthropic", "HTTP 529: Overloaded")
    assert hold is not None and hold.account == "anthropic" and hold.seconds == 2
    assert accounts.get("anthropic").condition().status is Status.DOWN
    assert accounts.get("anthropic").closed_for() == 2
    assert accounts.admit("exa") is None  # other providers keep running


async def test_one_probe_per_window_backs_off_doubling_to_the_cap_and_success_closes() -> None:
    clock = FakeClock()
    accounts = _accounts(clock)
    exa = accounts.get("exa")
    for _ in range(3):
        await accounts.failed("exa", "HTTP 503")
    waits: list[float | None] = []
    for _ in range(3):
        clock.now += exa.closed_for() or 0.0
        assert accounts.admit("exa") is None  # this caller probes
        assert exa.closed_for() == exa.breaker.probe_seconds * 2 ** len(waits) or waits
        assert accounts.admit("exa") is not None  # the others wait a whole probe interval
        failed = await accounts.failed("exa", "HTTP 503")
        assert failed is not None
        waits.append(exa.closed_for())
    assert waits == [4, 5, 5]
    # A call that started before the breaker opened fails late: no change.
    await accounts.failed("exa", "HTTP 503")
    assert exa.closed_for() == 5
    clock.now += 5
    assert accounts.admit("exa") is None
    assert await accounts.succeeded("exa")  # back: its parked items may come back
    assert exa.condition().status is Status.UP and accounts.admit("exa") is None


async def test_one_waiting_item_carries_the_next_probe_the_others_are_parked() -> None:
    clock = FakeClock()
    accounts = _accounts(clock)
    for _ in range(2):
        await accounts.failed("openai", "HTTP 529")
    opened = await accounts.failed("openai", "HTTP 529")
    assert opened is not None and opened.seconds == 2  # the failing item carries the probe
    account = accounts.get("openai")
    assert account.park() == PARK_SECONDS  # parked until woken (or this long)
    clock.now += 5  # the carrier did not show up (taken by another process): a new one
    assert account.park() == 0


async def test_a_provider_name_covers_its_accounts_and_one_account_down_holds_only_its_units() -> (
    None
):
    clock = FakeClock()
    accounts = _accounts(clock, threshold=1)
    sonnet = accounts.get("anthropic:claude-sonnet")
    haiku = accounts.get("anthropic:claude-haiku")
    assert await accounts.failed("anthropic:claude-sonnet", "HTTP 529") is not None
    assert sonnet.condition().status is Status.DOWN and haiku.condition().status is Status.UP
    # A bare provider name covers its accounts: closed while any of them is.
    held = accounts.admit("anthropic")
    assert held is not None and held.account == "anthropic:claude-sonnet"
    assert accounts.admit("anthropic:claude-haiku") is None
    clock.now += 2
    assert accounts.admit("anthropic") is None  # this caller probes
    assert await accounts.succeeded("anthropic")
    assert sonnet.condition().status is Status.UP


def test_an_account_counts_as_used_while_waiting_out_or_within_the_window() -> None:
    clock = FakeClock()
    accounts = Accounts(clock=clock.clock)
    exa = accounts.get("exa")
    assert accounts.active(10) == []
    exa.last_used = clock.now
    clock.now += 10
    assert accounts.active(10) == ["exa"]
    clock.now += 1
    assert accounts.active(10) == []
    exa.busy = 1  # a request is out
    assert accounts.active(10) == ["exa"]
    accounts.set_shares({"exa": 3, "arxiv": 2})  # accounts it never made are ignored
    assert exa.share == 3


def test_a_pause_closes_the_account_at_once_and_an_operator_resume_reopens_it() -> None:
    clock = FakeClock()
    accounts = _accounts(clock)
    account = accounts.get("anthropic:claude-haiku")
    account.pause("HTTP 401", hint="check ANTHROPIC_API_KEY")
    condition = account.condition()
    assert condition.status is Status.PAUSED and condition.reason == "HTTP 401"
    assert condition.reopens_in == PAUSE_SECONDS
    assert [c.account for c in accounts.waiting()] == ["anthropic:claude-haiku"]
    held = accounts.admit("anthropic")
    assert held is not None and "paused: HTTP 401" in held.reason
    assert accounts.resume("anthropic") == ["anthropic:claude-haiku"]
    assert account.condition().status is Status.UP and accounts.admit("anthropic") is None
    assert accounts.resume("anthropic") == []  # nothing was waiting any more
