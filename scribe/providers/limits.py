"""The rate limits a provider reports on each response (Anthropic's ``anthropic-ratelimit-*``,
OpenAI-compatible ``x-ratelimit-*``), parsed for the account records (scribe.providers.account)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")  # OpenAI's "6m0s", "1.5s", "20ms"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class Limit:
    """One metered quantity as a response reported it."""

    kind: str
    limit: float | None
    remaining: float | None
    reset_seconds: float | None  # from now


def parse_limits(headers: Mapping[str, str]) -> list[Limit]:
    """The limits a response reports, Anthropic's or OpenAI's header names."""
    limits: list[Limit] = []
    for kind in ("requests", "input-tokens", "output-tokens", "tokens"):
        limit = _number(headers.get(f"anthropic-ratelimit-{kind}-limit"))
        remaining = _number(headers.get(f"anthropic-ratelimit-{kind}-remaining"))
        reset = _reset_time(headers.get(f"anthropic-ratelimit-{kind}-reset"))
        if limit is not None or remaining is not None:
            limits.append(Limit(kind.replace("-", "_"), limit, remaining, reset))
    for kind in ("requests", "tokens"):
        limit = _number(headers.get(f"x-ratelimit-limit-{kind}"))
        remaining = _number(headers.get(f"x-ratelimit-remaining-{kind}"))
        reset = _duration(headers.get(f"x-ratelimit-reset-{kind}"))
        if limit is not None or remaining is not None:
            limits.append(Limit(kind, limit, remaining, reset))
    return limits


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _reset_time(raw: str | None) -> float | None:
    """Seconds from now to an RFC 3339 time (Anthropic's ``-reset``)."""
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _duration(raw: str | None) -> float | None:
    """Seconds in an OpenAI reset duration (``1s``, ``6m0s``, ``20ms``) or a bare number."""
    if not raw:
        return None
    plain = _number(raw)
    if plain is not None:
        return plain
    parts = _DURATION.findall(raw[:40])
    if not parts:
        return None
    return sum(float(value) * _UNITS[unit] for value, unit in parts)
