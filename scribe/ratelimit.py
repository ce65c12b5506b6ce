"""Per-client request rate limit (token bucket in memory; one process's view)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

_MAX_CLIENTS = 10_000  # oldest buckets are forgotten past this
_LOOPBACK = {"127.0.0.1", "::1"}
_EXEMPT_PATHS = {"/health", "/metrics"}


class TokenBuckets:
    """``rate_per_minute`` tokens a minute per key, bursts up to the same number."""

    def __init__(self, rate_per_minute: int) -> None:
        self.capacity = float(rate_per_minute)
        self.refill_per_second = rate_per_minute / 60.0
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float | None = None) -> float:
        """Spend one token; return 0 if allowed, else seconds until one is available."""
        now = time.monotonic() if now is None else now
        tokens, stamp = self._buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - stamp) * self.refill_per_second)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.refill_per_second
        # Buckets are ordered by last use. One idle long enough to be full again is the same as
        # no bucket: drop those (expired), then the least recently used past the bound.
        refilled = self.capacity / self.refill_per_second
        while self._buckets:
            stamp = next(iter(self._buckets.values()))[1]
            if now - stamp < refilled and len(self._buckets) <= _MAX_CLIENTS:
                break
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


def client_key(scope: Scope) -> str:
    """The client's address; behind a local cloudflared, the one Cloudflare reports."""
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    if peer in _LOOPBACK:
        forwarded = dict(scope["headers"]).get(b"cf-connecting-ip")
        if forwarded:
            return str(forwarded.decode("latin-1"))[:64]
    return str(peer)


class RateLimitMiddleware:
    """Answer 429 with Retry-After when a client exceeds its request rate."""

    def __init__(self, app: ASGIApp, rate_per_minute: int) -> None:
        self.app = app
        self.buckets = TokenBuckets(rate_per_minute)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in _EXEMPT_PATHS:
            wait = self.buckets.take(client_key(scope))
            if wait > 0:
                response = JSONResponse(
                    {"detail": "Too many requests; slow down."},
                    status_code=429,
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
