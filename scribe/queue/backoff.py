"""The one backoff policy of the queue: when an item that failed (or lost its worker) runs again.

Exponential with jitter, and never sooner than the service asked for (``Retry-After``). The
runner uses it for retries and provider waits; the reaper hands its schedule to the
``reap_expired_leases`` statement (``schedule``), which has no formula of its own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from scribe.settings import Settings


@dataclass(frozen=True, slots=True)
class Backoff:
    """``base * 2^(attempt-1)`` seconds capped at ``cap``, scaled by a random factor in [0.5, 1)
    so that items failing together do not retry together ("equal jitter")."""

    base: float
    cap: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Backoff:
        """SCRIBE_RETRY_BASE_SECONDS and SCRIBE_RETRY_MAX_SECONDS."""
        return cls(base=settings.scribe_retry_base_seconds, cap=settings.scribe_retry_max_seconds)

    def delay(
        self,
        attempt: int,
        *,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float:
        """Seconds to wait before attempt ``attempt + 1``, after attempt ``attempt`` (1-based)
        failed; at least ``retry_after``."""
        exponential: float = min(self.cap, self.base * 2.0 ** max(0, attempt - 1))
        jitter: float = 0.5 + (rng or random).random() / 2
        delay = exponential * jitter
        if retry_after is not None:
            return max(delay, retry_after)
        return delay

    def schedule(self, attempts: int, rng: random.Random | None = None) -> list[float]:
        """The delays after failure 1, 2 … ``attempts`` (the reaper's, indexed by crash count)."""
        return [self.delay(attempt, rng=rng) for attempt in range(1, attempts + 1)]


def truncate_error(message: str, limit: int = 1000) -> str:
    """``message`` cut to ``limit`` characters (the column's CHECK), marked when cut."""
    if len(message) <= limit:
        return message
    return message[: limit - 1] + "…"
