"""When a transiently failed item runs again: exponential backoff with jitter, and never sooner
than the service asked for (``Retry-After``)."""

from __future__ import annotations

import random

DEFAULT_BASE_SECONDS = 5.0
DEFAULT_MAX_SECONDS = 600.0


def retry_delay(
    attempt: int,
    *,
    base: float = DEFAULT_BASE_SECONDS,
    cap: float = DEFAULT_MAX_SECONDS,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before attempt ``attempt + 1``, after attempt ``attempt`` (1-based) failed.

    ``base * 2^(attempt-1)`` capped at ``cap``, scaled by a random factor in [0.5, 1) so that
    items failing together do not retry together ("equal jitter"); at least ``retry_after``.
    """
    exponential: float = min(cap, base * 2.0 ** max(0, attempt - 1))
    jitter: float = 0.5 + (rng or random).random() / 2
    delay = exponential * jitter
    if retry_after is not None:
        return max(delay, retry_after)
    return delay


def truncate_error(message: str, limit: int = 1000) -> str:
    """``message`` cut to ``limit`` characters (the column's CHECK), marked when cut."""
    if len(message) <= limit:
        return message
    return message[: limit - 1] + "…"
