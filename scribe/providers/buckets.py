"""Token buckets and what a request costs them (requests, input and output tokens)."""

from __future__ import annotations

import math
from dataclasses import dataclass


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
