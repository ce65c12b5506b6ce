"""Sending one request through its account: ``send_paced`` waits for room, sends, and treats a
failure by the provider's one error table (``Refusal``): a 429 is waited out, a retryable fault
retried with backoff, a refused key or credit pauses the account."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from scribe.errors import ProviderPaused, UpstreamRejected, UpstreamUnavailable
from scribe.providers.account import PAUSE_SECONDS, Account, Timer
from scribe.providers.buckets import Cost


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
        """The error a caller gets once the account gives up: unavailable (try later) when the
        failure was retryable, else rejected (this request will not pass)."""
        message = self.message or f"{account} failed"
        if self.retryable:
            return UpstreamUnavailable(message, provider=account, retry_after=self.retry_after)
        return UpstreamRejected(message, provider=account)


R = TypeVar("R")
Sent = tuple[R, Mapping[str, str] | None, Cost | None]


async def send_paced(
    account: Account,
    cost: Cost,
    send: Callable[[], Awaitable[Sent[R]]],
    judge: Callable[[Exception], Refusal | None],
    *,
    max_retries: int,
    timer: Timer | None = None,
) -> R:
    """Send through ``account`` (``timer``: the calling step's, held while waiting for it).
    ``send`` returns (result, response headers, actual usage); ``judge`` (the provider's one
    error table) says how a failure is treated (None: not the provider's, re-raised as is); what
    is not waited out or retried is raised as the judged ``UpstreamUnavailable`` /
    ``UpstreamRejected``.

    A 429 is waited out and sent again, however often (bounded by the caller's job timeout,
    never an attempt); a retryable failure is retried ``max_retries`` times with backoff (the
    SDKs' own retries are off, so that they never send into a known rate limit)."""
    retries = 0
    while True:
        reservation = await account.acquire(cost, timer)
        try:
            result, headers, used = await send()
        except Exception as exc:
            refusal = judge(exc)
            if refusal is None:
                account.release(reservation, None)
                raise
            if refusal.rate_limited:
                account.rate_limited(reservation, refusal.headers, refusal.retry_after)
                continue
            account.release(reservation, refusal.headers)
            if refusal.pause is not None:
                account.pause(refusal.pause, hint=refusal.hint)
                # Not the item's fault: it waits for the provider like every item after it.
                raise ProviderPaused(
                    f"{account.name} paused: {refusal.pause}",
                    retry_after=PAUSE_SECONDS,
                    provider=account.name,
                ) from exc
            if refusal.retryable and retries < max_retries:
                retries += 1
                await account.clock.sleep(retry_pause(retries, refusal.retry_after))
                continue
            raise refusal.error(account.name) from exc
        except BaseException:  # cancelled (timeout): the request may have gone out
            account.release(reservation, None)
            raise
        account.settle(reservation, headers, used)
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
