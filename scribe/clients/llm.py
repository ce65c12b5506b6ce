"""The LLM interface every step uses, and the mapping of model ids to providers.

A request carries its prompt, the pydantic model of the answer, and the rule-based answer the
offline provider returns instead of calling a model. Providers answer with the parsed value and
a usage record (tokens and an estimated cost), which the steps keep in their outputs (``usage``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from pydantic import BaseModel

from scribe.errors import MalformedOutput, PermanentStepError
from scribe.providers.account import Timer
from scribe.providers.calls import Refusal

T = TypeVar("T", bound=BaseModel)

# Estimated USD per million tokens (input, output); unknown models are recorded without a cost.
# Prompt-cache tokens are priced from the input price: a write (5-minute cache) costs 1.25 times
# it, a read 0.1 times it (Anthropic's prompt-caching prices).
CACHE_WRITE_PRICE = 1.25
CACHE_READ_PRICE = 0.1
PRICES: dict[str, tuple[float, float]] = {
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-sonnet-4-6": (3.0, 15.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-opus-4-6": (5.0, 25.0),
}


@dataclass(frozen=True, slots=True)
class LLMRequest(Generic[T]):
    """One structured-output call."""

    purpose: str  # the step or task asking, recorded with the usage
    system: str
    prompt: str
    output: type[T]
    offline: Callable[[], T]  # the rule-based answer, used only by the offline provider
    max_tokens: int = 2048
    # The calling step's timer, held while the call waits for its account (None: no step).
    timer: Timer | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class LLMResponse(Generic[T]):
    """The parsed answer and what it cost."""

    value: T
    usage: dict[str, Any] = field(default_factory=dict)


class LLM(Protocol):
    """A model that answers structured-output requests."""

    @property
    def model(self) -> str:
        """The model id recorded in metadata (``anthropic:…``, ``openai:…`` or ``offline``)."""
        ...

    @property
    def account(self) -> str | None:
        """The provider account this model's calls are paced and broken under
        (``anthropic:claude-sonnet``, ``openai:<base url>``), or None (offline)."""
        ...

    async def generate(self, request: LLMRequest[T]) -> LLMResponse[T]:
        """Answer the request; raise UpstreamUnavailable (try later), UpstreamRejected (the
        provider refused this request) or PermanentStepError (malformed answers) on failure."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def usage_record(
    purpose: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    seconds: float,
    *,
    cache_write_tokens: int = 0,
    cache_read_tokens: int = 0,
) -> dict[str, Any]:
    """A usage entry: tokens (``input_tokens`` excludes the prompt-cache writes and reads, as
    Anthropic reports them), an estimated cost in USD (None for unknown prices), latency."""
    name = model.partition(":")[2] or model
    price = PRICES.get(name)
    cost = None
    if price is not None:
        cached = cache_write_tokens * CACHE_WRITE_PRICE + cache_read_tokens * CACHE_READ_PRICE
        cost = round(((input_tokens + cached) * price[0] + output_tokens * price[1]) / 1_000_000, 6)
    return {
        "purpose": purpose,
        "model": model,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": cache_write_tokens,
        "cache_read_input_tokens": cache_read_tokens,
        "estimated_cost_usd": cost,
        "seconds": round(seconds, 3),
    }


class Answer(NamedTuple, Generic[T]):
    """One model answer: its tokens and a parser raising MalformedOutput."""

    input_tokens: int
    output_tokens: int
    parse: Callable[[], T]
    cache_write_tokens: int = 0  # prompt-cache tokens written (priced above input)
    cache_read_tokens: int = 0  # prompt-cache tokens read (priced well below input)


async def ask_with_one_repair(
    request: LLMRequest[T], model: str, ask: Callable[[], Awaitable[Answer[T]]]
) -> LLMResponse[T]:
    """Call ``ask``; a malformed answer is asked again once at once, a second one fails the item
    permanently (retrying the same prompt later would only spend money). Usage covers both."""
    started = time.monotonic()
    tokens = [0, 0, 0, 0]  # input, output, cache writes, cache reads
    for attempt in (1, 2):
        answer = await ask()
        for index, count in enumerate(
            (answer[0], answer[1], answer.cache_write_tokens, answer.cache_read_tokens)
        ):
            tokens[index] += count
        try:
            # Off the event loop: an answer can be megabytes of JSON, and the output model's
            # validators clean its text (linear, but still milliseconds per 100 kB).
            value = await asyncio.to_thread(answer.parse)
        except MalformedOutput as exc:
            if attempt == 2:
                raise PermanentStepError(str(exc)[:500]) from exc
            continue
        seconds = time.monotonic() - started
        usage = usage_record(
            request.purpose,
            model,
            tokens[0],
            tokens[1],
            seconds,
            cache_write_tokens=tokens[2],
            cache_read_tokens=tokens[3],
        )
        return LLMResponse(value, usage)
    raise AssertionError("unreachable")


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds form), if present."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return max(0.0, float(raw) / scale)
        except ValueError:
            continue
    return None


def judge_llm_failure(
    status: int | None,
    headers: Any,
    *,
    detail: str,
    key_setting: str,
    quota_exhausted: bool = False,
) -> Refusal:
    """The one error table of the LLM providers: how a failed call is treated, from its HTTP
    ``status`` (None: no answer: a timeout or connection error).

    No answer, 408, 409, 5xx and 529: retried, then "upstream unavailable"; 429: waited out as
    the rate-limit headers say; 401/403 and an exhausted quota: the account is paused (the
    hint naming ``key_setting`` goes to the log only); any other 4xx: "upstream rejected"."""
    if status is None:
        return Refusal(retryable=True, message=f"LLM request failed: {detail}")
    retry_after = parse_retry_after(headers)
    if quota_exhausted:
        return Refusal(headers, pause=f"quota exhausted ({detail[:100]})")
    if status == 429:
        return Refusal(headers, rate_limited=True, retry_after=retry_after)
    if status in (401, 403):
        return Refusal(headers, pause=f"HTTP {status}", hint=f"check {key_setting}")
    retryable = status in (408, 409) or status >= 500
    message = (
        f"LLM returned HTTP {status}: {detail[:300]}" if detail else f"LLM returned HTTP {status}"
    )
    return Refusal(headers, retry_after=retry_after, retryable=retryable, message=message)
