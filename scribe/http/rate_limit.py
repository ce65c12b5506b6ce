"""Per-client request rate limit (token bucket in memory; one process's view)."""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from scribe.settings import Settings

_MAX_CLIENTS = 10_000  # oldest buckets are forgotten past this
_MAX_XFF_HOPS = 16  # X-Forwarded-For entries looked at, from the right
_MAX_HEADER_CHARS = 2048
_EXEMPT_PATHS = {"/health", "/metrics"}
# An IPv6 client is one /64: that is the smallest prefix a provider hands to one subscriber
# (RFC 6177 and common practice), and any host can pick new addresses inside its /64 at will.
IPV6_CLIENT_PREFIX = 64


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


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _networks(entries: list[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
    return address


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """Who a request comes from, for rate limiting.

    The TCP peer, unless the peer is a proxy we trust to say who its client is: a peer in
    ``cf_proxies`` (default: loopback, where cloudflared runs) is believed about
    ``CF-Connecting-IP``; a peer in ``xff_proxies`` (default: none) about ``X-Forwarded-For``,
    read from the right, skipping trusted hops. A header from any other peer is ignored, so a
    client cannot pick a new identity per request by rotating it.
    """

    cf_proxies: tuple[Network, ...] = _networks(["127.0.0.1/32", "::1/128"])
    xff_proxies: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientIdentity:
        """The identity rule of ``SCRIBE_CF_TRUSTED_PROXIES`` / ``SCRIBE_XFF_TRUSTED_PROXIES``."""
        return cls(
            cf_proxies=_networks(settings.scribe_cf_trusted_proxies),
            xff_proxies=_networks(settings.scribe_xff_trusted_proxies),
        )

    def key(self, scope: Scope) -> str:
        """The client as a rate-limit key: its IPv4 address, or the /64 of its IPv6 address."""
        client = self.client(scope)
        if client is None:
            return "unknown"
        if isinstance(client, ipaddress.IPv6Address):
            return str(ipaddress.IPv6Network((client, IPV6_CLIENT_PREFIX), strict=False))
        return str(client)

    def client(self, scope: Scope) -> Address | None:
        """The client's address (see the class docstring), or None when it is not known."""
        client = scope.get("client")
        peer = _address(client[0]) if client else None
        if peer is None:
            return None
        if self._trusted(peer, self.cf_proxies):
            forwarded = _header(scope, b"cf-connecting-ip")
            claimed = _address(forwarded) if forwarded is not None else None
            if claimed is not None:
                return claimed
        if self._trusted(peer, self.xff_proxies):
            forwarded = _header(scope, b"x-forwarded-for")
            if forwarded is not None:
                return self._rightmost_untrusted(forwarded, peer)
        return peer

    def _rightmost_untrusted(self, header: str, peer: Address) -> Address:
        # Each trusted proxy appends the address it saw; entries left of the first untrusted
        # one (from the right) were written by the client and prove nothing.
        hop = peer
        for entry in reversed(header.split(",")[-_MAX_XFF_HOPS:]):
            address = _address(entry)
            if address is None:
                return hop
            hop = address
            if not self._trusted(hop, self.xff_proxies):
                return hop
        return hop

    @staticmethod
    def _trusted(address: Address, networks: tuple[Network, ...]) -> bool:
        return any(address in network for network in networks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value[:_MAX_HEADER_CHARS].decode("latin-1"))
    return None


class RateLimitMiddleware:
    """Answer 429 with Retry-After when a client exceeds its request rate."""

    def __init__(
        self, app: ASGIApp, rate_per_minute: int, identity: ClientIdentity | None = None
    ) -> None:
        self.app = app
        self.buckets = TokenBuckets(rate_per_minute)
        self.identity = identity or ClientIdentity()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in _EXEMPT_PATHS:
            wait = self.buckets.take(self.identity.key(scope))
            if wait > 0:
                response = JSONResponse(
                    {"detail": "Too many requests; slow down."},
                    status_code=429,
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
