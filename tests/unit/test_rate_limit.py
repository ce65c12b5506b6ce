"""The per-client token bucket."""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.types import Message, Receive, Scope, Send

from scribe.http.rate_limit import _MAX_CLIENTS, ClientIdentity, RateLimitMiddleware, TokenBuckets
from scribe.settings import Settings


def test_bucket_allows_burst_then_asks_to_wait() -> None:
    buckets = TokenBuckets(rate_per_minute=3)
    assert [buckets.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = buckets.take("a", now=0.0)
    assert 19.9 < wait <= 20.0  # one token every 20 s
    assert buckets.take("b", now=0.0) == 0.0  # other clients unaffected
    assert buckets.take("a", now=20.0) == 0.0


def _scope(peer: str, *headers: tuple[bytes, bytes]) -> Scope:
    return {"type": "http", "client": (peer, 5000), "headers": list(headers)}


def test_cloudflare_address_trusted_only_from_loopback() -> None:
    identity = ClientIdentity()
    header = (b"cf-connecting-ip", b"203.0.113.9")
    assert identity.key(_scope("127.0.0.1", header)) == "203.0.113.9"
    assert identity.key(_scope("::1", header)) == "203.0.113.9"
    assert identity.key(_scope("::ffff:127.0.0.1", header)) == "203.0.113.9"  # dual-stack bind
    assert identity.key(_scope("198.51.100.1", header)) == "198.51.100.1"


def test_forwarded_for_is_never_trusted_by_default() -> None:
    identity = ClientIdentity()
    header = (b"x-forwarded-for", b"203.0.113.9")
    assert identity.key(_scope("127.0.0.1", header)) == "127.0.0.1"
    assert identity.key(_scope("198.51.100.1", header)) == "198.51.100.1"


def test_cloudflare_header_that_is_not_an_address_falls_back_to_the_peer() -> None:
    identity = ClientIdentity()
    assert identity.key(_scope("127.0.0.1", (b"cf-connecting-ip", b"x" * 5000))) == "127.0.0.1"


def test_forwarded_for_from_a_trusted_proxy_is_read_from_the_right() -> None:
    identity = ClientIdentity.from_settings(
        Settings(_env_file=None, scribe_xff_trusted_proxies="10.0.0.0/8")
    )
    # The client wrote "1.2.3.4"; proxy 10.0.0.2 appended the address it saw (203.0.113.9).
    header = (b"x-forwarded-for", b"1.2.3.4, 203.0.113.9, 10.0.0.2")
    assert identity.key(_scope("10.0.0.1", header)) == "203.0.113.9"
    assert identity.key(_scope("198.51.100.1", header)) == "198.51.100.1"
    assert identity.key(_scope("10.0.0.1", (b"x-forwarded-for", b"junk"))) == "10.0.0.1"


async def _statuses(limited: RateLimitMiddleware, scopes: list[Scope]) -> list[int]:
    """The status each request of ``scopes`` gets from ``limited``, in order."""
    statuses = []
    for scope in scopes:
        sent: list[Message] = []

        async def send(message: Message, sent: list[Message] = sent) -> None:
            sent.append(message)

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        await limited({**scope, "path": "/api/user/profile"}, receive, send)
        statuses.append(sent[0]["status"])
    return statuses


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("ok")(scope, receive, send)


async def test_rotating_forwarding_headers_from_an_untrusted_peer_does_not_escape_the_limit() -> (
    None
):
    scopes = [
        _scope(
            "198.51.100.7",
            (b"cf-connecting-ip", f"203.0.113.{n}".encode()),
            (b"x-forwarded-for", f"192.0.2.{n}".encode()),
        )
        for n in range(6)
    ]
    statuses = await _statuses(RateLimitMiddleware(_ok, rate_per_minute=3), scopes)
    assert statuses == [200, 200, 200, 429, 429, 429]


def test_an_ipv6_client_is_its_64_and_an_ipv4_client_its_address() -> None:
    identity = ClientIdentity()
    one = identity.key(_scope("2001:db8:1:2::1"))
    assert one == "2001:db8:1:2::/64"
    assert identity.key(_scope("2001:db8:1:2:ffff:ffff:ffff:ffff")) == one
    assert identity.key(_scope("2001:db8:1:3::1")) != one  # the next /64 is someone else
    assert identity.key(_scope("203.0.113.1")) == "203.0.113.1"
    assert identity.key(_scope("203.0.113.2")) == "203.0.113.2"  # no grouping of IPv4
    assert identity.key(_scope("::ffff:203.0.113.1")) == "203.0.113.1"  # dual-stack bind
    behind_tunnel = (b"cf-connecting-ip", b"2001:db8:aa:bb:1:2:3:4")
    assert identity.key(_scope("127.0.0.1", behind_tunnel)) == "2001:db8:aa:bb::/64"


async def test_rotating_addresses_inside_one_ipv6_64_does_not_escape_the_limit() -> None:
    scopes = [_scope(f"2001:db8:1:2:{n:x}:{n:x}:{n:x}:{n:x}") for n in range(1, 7)]
    limited = RateLimitMiddleware(_ok, rate_per_minute=3)
    assert await _statuses(limited, scopes) == [200, 200, 200, 429, 429, 429]
    assert await _statuses(limited, [_scope("2001:db8:1:3::1")]) == [200]  # another /64


def test_buckets_stay_within_the_bound_and_idle_full_ones_are_dropped() -> None:
    buckets = TokenBuckets(rate_per_minute=60)  # full again after 60 s idle
    for n in range(_MAX_CLIENTS + 500):
        buckets.take(f"client {n}", now=n / 1000)
    assert len(buckets) == _MAX_CLIENTS
    assert buckets.take("throttled", now=30.0) == 0.0
    buckets.take("late", now=75.0)  # the first ones idle 60 s or more: full, so forgotten
    assert len(buckets) == 2
