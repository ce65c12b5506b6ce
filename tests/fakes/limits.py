"""Rate limits for the fakes: the providers' token buckets and their real header names.

A service limited to N requests (or tokens) per minute holds at most N, refilled continuously
(how Anthropic documents its limits). A request over the limit is answered 429 with
``retry-after``; every answer carries the limit, what remains and when it is full again, as
``anthropic-ratelimit-{requests,input-tokens,output-tokens}-{limit,remaining,reset}`` (Anthropic)
or ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` (OpenAI-compatible). Exa sends none.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass
class _Bucket:
    limit: float  # per minute (what the limit headers say)
    level: float
    updated: float
    capacity: float  # what the bucket holds: a minute's worth unless the window is shortened

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.limit / 60.0)
        self.updated = now

    def seconds_to(self, amount: float) -> float:
        missing = min(amount, self.capacity) - self.level
        return max(0.0, missing * 60.0 / self.limit)


@dataclass
class FakeLimits:
    """Per-minute limits of one fake service (None: not metered) and what they refused."""

    requests: float | None = None
    input_tokens: float | None = None
    output_tokens: float | None = None
    # Minutes' worth of each limit a bucket holds. Below 1 a benchmark compresses time: limits
    # k times the real ones with buckets of 1/k minute are the real limits run k times faster.
    burst_minutes: float = 1.0
    clock: Callable[[], float] = time.monotonic
    accepted: int = 0
    rejected: int = 0
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def __post_init__(self) -> None:
        now = self.clock()
        for kind in ("requests", "input_tokens", "output_tokens"):
            limit = getattr(self, kind)
            if limit is not None:
                capacity = float(limit) * self.burst_minutes
                self._buckets[kind] = _Bucket(float(limit), capacity, now, capacity)

    def admit(self, input_tokens: int) -> float | None:
        """Take one request of ``input_tokens``; None when admitted, else the seconds to wait."""
        now = self.clock()
        wanted = {"requests": 1.0, "input_tokens": float(input_tokens), "output_tokens": 1.0}
        wait = 0.0
        for kind, bucket in self._buckets.items():
            bucket.refill(now)
            if bucket.level < min(wanted[kind], bucket.capacity):
                wait = max(wait, bucket.seconds_to(wanted[kind]))
        if wait > 0:
            self.rejected += 1
            return wait
        for kind, bucket in self._buckets.items():
            if kind != "output_tokens":
                bucket.level -= wanted[kind]
        self.accepted += 1
        return None

    def used_output(self, tokens: int) -> None:
        """The answer's output tokens (known only after answering)."""
        bucket = self._buckets.get("output_tokens")
        if bucket is not None:
            bucket.refill(self.clock())
            bucket.level -= tokens

    def anthropic_headers(self) -> dict[str, str]:
        """Anthropic's rate-limit headers for the current state."""
        headers: dict[str, str] = {}
        now = self.clock()
        for kind, bucket in self._buckets.items():
            bucket.refill(now)
            name = kind.replace("_", "-")
            full_at = datetime.now(UTC) + timedelta(seconds=bucket.seconds_to(bucket.capacity))
            headers[f"anthropic-ratelimit-{name}-limit"] = str(int(bucket.limit))
            headers[f"anthropic-ratelimit-{name}-remaining"] = str(max(0, int(bucket.level)))
            headers[f"anthropic-ratelimit-{name}-reset"] = full_at.isoformat().replace(
                "+00:00", "Z"
            )
        return headers

    def openai_headers(self) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers (tokens: the input-token bucket)."""
        headers: dict[str, str] = {}
        now = self.clock()
        for kind, name in (("requests", "requests"), ("input_tokens", "tokens")):
            bucket = self._buckets.get(kind)
            if bucket is None:
                continue
            bucket.refill(now)
            headers[f"x-ratelimit-limit-{name}"] = str(int(bucket.limit))
            headers[f"x-ratelimit-remaining-{name}"] = str(max(0, int(bucket.level)))
            headers[f"x-ratelimit-reset-{name}"] = f"{bucket.seconds_to(bucket.capacity):.3f}s"
        return headers


def retry_after(seconds: float) -> dict[str, str]:
    """``retry-after`` in whole seconds (rounded up), as the providers send it."""
    return {"retry-after": str(max(1, math.ceil(seconds)))}
