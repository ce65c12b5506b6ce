"""An account's bucket math, header parsing and 429 handling, on a fake clock (no I/O)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from scribe.errors import ProviderPaused, UpstreamUnavailable
from scribe.providers.account import Account, Status
from scribe.providers.buckets import Bucket, Cost
from scribe.providers.calls import Refusal, model_family, send_paced
from scribe.providers.limits import parse_limits
from scribe.queue.waiting import StepTimer
from tests.fakes.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def anthropic_headers(limit: int, remaining: int, tokens: int, tokens_left: int) -> dict[str, str]:
    reset = (datetime.now(UTC) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    return {
        "anthropic-ratelimit-requests-limit": str(limit),
        "anthropic-ratelimit-requests-remaining": str(remaining),
        "anthropic-ratelimit-requests-reset": reset,
        "anthropic-ratelimit-input-tokens-limit": str(tokens),
        "anthropic-ratelimit-input-tokens-remaining": str(tokens_left),
        "anthropic-ratelimit-input-tokens-reset": reset,
    }


def test_bucket_refills_at_the_limit_per_minute_up_to_its_capacity() -> None:
    bucket = Bucket(limit=60.0, level=0.0, updated=0.0)
    assert bucket.wait(1.0, 0.0) == pytest.approx(1.0)  # 60/min: one per second
    bucket.refill(30.0)
    assert bucket.level == pytest.approx(30.0)
    bucket.refill(600.0)
    assert bucket.level == 60.0
    burst = Bucket(limit=20.0, level=0.0, updated=0.0, burst=1.0)  # arXiv: one per 3 s
    assert burst.wait(1.0, 0.0) == pytest.approx(3.0)
    burst.refill(100.0)
    assert burst.level == 1.0


def test_a_request_larger_than_the_limit_waits_for_a_full_bucket_not_forever() -> None:
    bucket = Bucket(limit=1000.0, level=0.0, updated=0.0)
    assert bucket.wait(5000.0, 0.0) == pytest.approx(60.0)


def test_anthropic_and_openai_headers_are_parsed() -> None:
    limits = {limit.kind: limit for limit in parse_limits(anthropic_headers(50, 49, 30000, 28000))}
    assert limits["requests"].limit == 50 and limits["requests"].remaining == 49
    assert limits["input_tokens"].remaining == 28000
    assert 28 <= (limits["requests"].reset_seconds or 0) <= 30
    openai = parse_limits(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-reset-requests": "120ms",
            "x-ratelimit-limit-tokens": "90000",
            "x-ratelimit-remaining-tokens": "1000",
            "x-ratelimit-reset-tokens": "6m0s",
        }
    )
    by_kind = {limit.kind: limit for limit in openai}
    assert by_kind["requests"].reset_seconds == pytest.approx(0.12)
    assert by_kind["tokens"].reset_seconds == pytest.approx(360.0)
    assert parse_limits({"anthropic-ratelimit-requests-limit": "nan-ish"}) == []


def test_model_family_groups_the_models_anthropic_limits_together() -> None:
    assert model_family("claude-sonnet-4-6") == model_family("claude-sonnet-4-5")
    assert model_family("claude-haiku-4-5") != model_family("claude-sonnet-4-6")


async def test_one_probe_until_the_limits_are_known_then_paced_by_the_headers(
    clock: FakeClock,
) -> None:
    pacer = Account("anthropic:claude-sonnet", clock=clock.clock)
    probe = await pacer.acquire(Cost(100, 10))
    second = asyncio.create_task(pacer.acquire(Cost(100, 10)))
    await asyncio.sleep(0)
    assert not second.done()  # waits for the probe's answer
    pacer.settle(probe, anthropic_headers(60, 59, 6000, 5900), Cost(100, 10))
    await second
    # 60 requests/min and 6000 input tokens/min: the tokens bind at 1000 per request.
    start = clock.now
    for _ in range(10):
        reservation = await pacer.acquire(Cost(1000, 10))
        pacer.settle(reservation, None, Cost(1000, 10))
    # The bucket held 5800 after two requests: five more at once (800 left), the sixth after
    # 2 s (200 more tokens at 100/s), then one per 10 s.
    assert clock.now - start == pytest.approx(2.0 + 4 * 10.0, abs=0.01)


async def test_reconciling_actual_usage_returns_what_was_over_reserved(clock: FakeClock) -> None:
    pacer = Account("p", caps={"input_tokens": 6000}, clock=clock.clock)
    reservation = await pacer.acquire(Cost(6000, 0))
    pacer.settle(reservation, None, Cost(1000, 0))
    start = clock.now
    await pacer.acquire(Cost(5000, 0))
    assert clock.now == start  # 5000 were given back at once


async def test_a_429_blocks_until_the_retry_after_and_empties_the_bucket(clock: FakeClock) -> None:
    pacer = Account("p", clock=clock.clock)
    first = await pacer.acquire(Cost(10, 1))
    pacer.settle(first, anthropic_headers(50, 49, 30000, 29000), Cost(10, 1))
    second = await pacer.acquire(Cost(10, 1))
    pacer.rate_limited(second, anthropic_headers(50, 0, 30000, 29000), retry_after=7.0)
    start = clock.now
    await pacer.acquire(Cost(10, 1))
    assert clock.now - start == pytest.approx(7.0, abs=0.01)
    assert pacer.stats.rate_limited == 1
    assert pacer.stats.waited_seconds == pytest.approx(7.0, abs=0.01)


async def test_the_share_divides_the_account_between_processes(clock: FakeClock) -> None:
    pacer = Account("p", caps={"requests": 60}, clock=clock.clock)
    pacer.set_share(2)
    assert pacer.buckets["requests"].limit == 30
    pacer.set_share(1)
    assert pacer.buckets["requests"].limit == 60


async def test_send_paced_waits_out_429s_and_pauses_on_a_rejected_key(clock: FakeClock) -> None:
    pacer = Account("p", clock=clock.clock)
    answers: list[Exception | str] = [KeyError("429"), KeyError("429"), "ok"]

    async def send() -> tuple[str, None, None]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer, None, None

    def judge(exc: Exception) -> Refusal | None:
        if str(exc) == "'429'":
            return Refusal(rate_limited=True, retry_after=2.0)
        return Refusal(pause="HTTP 401", hint="check THE_KEY")

    assert await send_paced(pacer, Cost(), send, judge, max_retries=0) == "ok"
    assert pacer.stats.rate_limited == 2
    answers[:] = [KeyError("401")]
    with pytest.raises(ProviderPaused, match="HTTP 401"):
        await send_paced(pacer, Cost(), send, judge, max_retries=3)
    with pytest.raises(ProviderPaused):  # paused: nothing is sent
        await send_paced(pacer, Cost(), send, judge, max_retries=3)
    assert pacer.condition().status is Status.PAUSED


async def test_a_setting_caps_what_the_headers_allow(clock: FakeClock) -> None:
    pacer = Account("p", caps={"requests": 10}, clock=clock.clock)
    reservation = await pacer.acquire(Cost(10, 1))
    pacer.settle(reservation, anthropic_headers(50, 49, 30000, 29000), Cost(10, 1))
    assert pacer.buckets["requests"].limit == 10
    assert pacer.buckets["input_tokens"].limit == 30000


async def _empty(pacer: Account) -> None:
    """Use up the account's request bucket (its next request waits for the refill)."""
    bucket = pacer.buckets["requests"]
    while bucket.level >= 1:
        await pacer.acquire(Cost())


async def test_a_wait_for_the_account_longer_than_the_step_timeout_is_not_a_step_timeout(
    clock: FakeClock,
) -> None:
    # 2 requests/min: once the bucket is empty the next request waits 30 s, longer than the
    # 1 s step timeout; the wait holds that timeout (moved to the job's deadline meanwhile), so
    # the step goes on with the time it had left.
    pacer = Account("anthropic:claude-sonnet", caps={"requests": 2}, clock=clock.clock)
    await _empty(pacer)
    deadline = asyncio.get_running_loop().time() + 3600
    during: list[tuple[float | None, Status]] = []
    async with asyncio.timeout(1) as timeout:
        before = timeout.when()
        timer = StepTimer(timeout, deadline=deadline)
        sleep = clock.sleep

        async def watched(seconds: float) -> None:
            during.append((timeout.when(), pacer.condition().status))
            await sleep(seconds)

        clock.sleep = watched  # type: ignore[method-assign]
        await pacer.acquire(Cost(), timer)
        after = timeout.when()
    # Held while waiting (only the job's deadline ran), and the long wait was reported.
    assert during == [(deadline, Status.RATE_LIMITED)]
    assert before is not None and after == pytest.approx(before, abs=0.5)  # then restored
    assert sum(clock.slept) == pytest.approx(30.0)
    assert timer.waits == [pytest.approx(30.0)]  # metered apart from the step's own time
    assert pacer.condition().status is Status.UP  # the wait is over


async def test_a_wait_past_the_job_deadline_is_upstream_unavailable_at_once(
    clock: FakeClock,
) -> None:
    pacer = Account(
        "anthropic:claude-sonnet", caps={"requests": 1}, clock=clock.clock
    )  # one a minute
    await _empty(pacer)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(1) as timeout:
        timer = StepTimer(timeout, deadline=loop.time() + 5)
        with pytest.raises(UpstreamUnavailable) as caught:
            await pacer.acquire(Cost(), timer)
    # The item waits in the queue for the provider (no attempt), for about the account's wait.
    assert caught.value.provider == "anthropic:claude-sonnet"
    assert caught.value.retry_after is not None and caught.value.retry_after > 5
    assert pacer.waiting == 0 and not clock.slept


async def test_a_waiter_takes_capacity_a_settle_gives_back_without_sleeping_out_its_wait() -> None:
    # 600 input tokens a minute: after the first request's 600 the next would wait a minute;
    # the first used none of its estimate, so the waiter goes at once (the guard is 10 s).
    pacer = Account("anthropic:claude-sonnet", caps={"input_tokens": 600})
    first = await pacer.acquire(Cost(input_tokens=600))
    waiter = asyncio.create_task(pacer.acquire(Cost(input_tokens=600)))
    while not pacer.waiting:
        await asyncio.sleep(0)
    pacer.settle(first, None, Cost(input_tokens=0))
    async with asyncio.timeout(10):
        second = await waiter
    assert second.cost.input_tokens == 600
