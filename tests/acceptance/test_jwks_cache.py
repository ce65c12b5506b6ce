"""JwksCache against the JWKS fake over real HTTP: single flight, stale-while-revalidate, backoff
and no fetch for tokens that cannot be valid. The cache's clock is controlled by the test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import jwt
import pytest

from scribe.errors import AuthenticationError, AuthUnavailable
from scribe.http.auth import JwksCache, TokenVerifier
from tests.fakes.jwks import JWKS_PATH, FakeJwks, new_key, serve_jwks
from tests.queue_support import wait_until


class Clock:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def jwks() -> Iterator[FakeJwks]:
    with serve_jwks() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def make_cache(
    jwks: FakeJwks, http: httpx.AsyncClient, clock: Clock, **options: float
) -> JwksCache:
    return JwksCache(jwks.base_url + JWKS_PATH, http, clock=clock, **options)


async def settle(cache: JwksCache) -> None:
    """Wait for a background refresh to end."""
    task = cache._refresh
    if task is not None:
        await asyncio.shield(task)


async def test_requests_while_the_provider_hangs_share_one_fetch(
    jwks: FakeJwks, http: httpx.AsyncClient
) -> None:
    jwks.hanging = True
    cache = make_cache(jwks, http, Clock(), fetch_timeout=0.5)
    lookups = [asyncio.create_task(cache.key(jwks.es256.kid)) for _ in range(10)]
    await wait_until(lambda: _reached(jwks, 1), timeout=10, message="the fetch to arrive")
    fetch = cache._refresh
    assert fetch is not None and not fetch.done()
    assert not any(lookup.done() for lookup in lookups)  # all ten wait, on that one fetch

    await settle(cache)  # the fetch gives up after fetch_timeout
    # Its end released every waiter at once: none waits for a fetch (or a timeout) of its own.
    assert all(lookup.done() for lookup in lookups)
    results = await asyncio.gather(*lookups, return_exceptions=True)
    assert all(isinstance(result, AuthUnavailable) for result in results)
    assert jwks.requests == 1


async def _reached(jwks: FakeJwks, requests: int) -> bool:
    return jwks.requests >= requests


async def test_cached_key_never_waits_for_a_refresh(
    jwks: FakeJwks, http: httpx.AsyncClient
) -> None:
    clock = Clock()
    cache = make_cache(jwks, http, clock, max_age=600, fetch_timeout=30)
    kid = jwks.es256.kid
    assert await cache.key(kid) is not None
    clock.now += 601  # the document is now old: the next lookup starts a refresh
    jwks.hanging = True
    for _ in range(5):
        assert await cache.key(kid) is not None
    # All five answered while the one refresh is still blocked at the provider.
    assert cache._refresh is not None and not cache._refresh.done()
    assert not jwks.release.is_set()
    jwks.release.set()
    await settle(cache)
    assert jwks.requests == 2


async def test_failed_refresh_keeps_the_cached_key_and_backs_off_exponentially(
    jwks: FakeJwks, http: httpx.AsyncClient
) -> None:
    clock = Clock()
    cache = make_cache(jwks, http, clock, max_age=600, backoff_base=1, backoff_max=60)
    kid = jwks.es256.kid
    assert await cache.key(kid) is not None
    jwks.down = True
    clock.now += 601
    assert await cache.key(kid) is not None  # stale, refresh fails in the background
    await settle(cache)
    assert jwks.requests == 2
    # Backoff 1 s, then 2 s, then 4 s: lookups inside a backoff start no fetch.
    for backoff in (1, 2, 4):
        clock.now += backoff - 0.1
        assert await cache.key(kid) is not None
        await settle(cache)
        requests = jwks.requests
        clock.now += 0.1
        assert await cache.key(kid) is not None
        await settle(cache)
        assert jwks.requests == requests + 1
    # The provider comes back: the next attempt after the backoff succeeds, backoff resets.
    jwks.down = False
    clock.now += 8
    await cache.key(kid)
    await settle(cache)
    fresh = jwks.rotate()
    clock.now += 31
    assert await cache.key(fresh.kid) is not None


async def test_unknown_kids_while_the_provider_is_down_cost_at_most_one_fetch(
    jwks: FakeJwks, http: httpx.AsyncClient
) -> None:
    clock = Clock()
    cache = make_cache(jwks, http, clock)
    assert await cache.key(jwks.es256.kid) is not None
    assert jwks.requests == 1
    jwks.down = True
    with pytest.raises(AuthUnavailable):
        await cache.key("made-up-1")
    for n in range(20):
        with pytest.raises(AuthUnavailable):
            await cache.key(f"made-up-{n + 2}")
    assert jwks.requests == 2
    # The known key keeps working all along.
    assert await cache.key(jwks.es256.kid) is not None


async def test_unknown_kids_refetch_at_most_once_per_cooldown(
    jwks: FakeJwks, http: httpx.AsyncClient
) -> None:
    clock = Clock()
    cache = make_cache(jwks, http, clock, miss_cooldown=30)
    assert await cache.key(jwks.es256.kid) is not None
    results = await asyncio.gather(*(cache.key(f"made-up-{n}") for n in range(20)))
    assert results == [None] * 20
    assert jwks.requests == 2
    clock.now += 29
    assert await cache.key("made-up-x") is None
    assert jwks.requests == 2
    clock.now += 1
    assert await cache.key("made-up-y") is None
    assert jwks.requests == 3


async def test_tokens_that_cannot_be_valid_cost_no_fetch(
    jwks: FakeJwks, http: httpx.AsyncClient
) -> None:
    verifier = TokenVerifier(
        hs256_secret=None, issuer=jwks.issuer, jwks=make_cache(jwks, http, Clock())
    )
    stranger = new_key("ES256")
    now = int(time.time())
    junk = [
        jwks.sign(stranger, exp=now - 60),
        jwks.sign(stranger, aud="anon"),
        jwks.sign(stranger, iss="https://elsewhere.example/auth/v1"),
        jwks.sign(stranger, exp=None),
        jwks.sign(stranger, sub=None),
        jwt.encode({"x": 1}, stranger.private_key, algorithm="ES256", headers={"kid": "k"}),
    ]
    for token in junk:
        with pytest.raises(AuthenticationError):
            await verifier.verify(token)
    assert jwks.requests == 0
    principal = await verifier.verify(jwks.sign(jwks.es256))
    assert principal.email.endswith("@uni.edu")
    assert jwks.requests == 1


async def test_key_cache_is_bounded(jwks: FakeJwks, http: httpx.AsyncClient) -> None:
    from scribe.http.auth import JWKS_MAX_KEYS

    jwks.keys = [new_key("ES256") for _ in range(JWKS_MAX_KEYS + 4)]
    cache = make_cache(jwks, http, Clock())
    found = [await cache.key(key.kid) for key in jwks.keys]
    assert sum(key is not None for key in found) == JWKS_MAX_KEYS
