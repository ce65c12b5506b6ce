"""The per-client token bucket."""

from __future__ import annotations

from scribe.ratelimit import _MAX_CLIENTS, TokenBuckets, client_key


def test_bucket_allows_burst_then_asks_to_wait() -> None:
    buckets = TokenBuckets(rate_per_minute=3)
    assert [buckets.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = buckets.take("a", now=0.0)
    assert 19.9 < wait <= 20.0  # one token every 20 s
    assert buckets.take("b", now=0.0) == 0.0  # other clients unaffected
    assert buckets.take("a", now=20.0) == 0.0


def test_cloudflare_address_trusted_only_from_loopback() -> None:
    headers = [(b"cf-connecting-ip", b"203.0.113.9")]
    local = {"client": ("127.0.0.1", 5000), "headers": headers}
    remote = {"client": ("198.51.100.1", 5000), "headers": headers}
    assert client_key(local) == "203.0.113.9"
    assert client_key(remote) == "198.51.100.1"


def test_buckets_stay_within_the_bound_and_idle_full_ones_are_dropped() -> None:
    buckets = TokenBuckets(rate_per_minute=60)  # full again after 60 s idle
    for n in range(_MAX_CLIENTS + 500):
        buckets.take(f"client {n}", now=n / 1000)
    assert len(buckets) == _MAX_CLIENTS
    assert buckets.take("throttled", now=30.0) == 0.0
    buckets.take("late", now=75.0)  # the first ones idle 60 s or more: full, so forgotten
    assert len(buckets) == 2
