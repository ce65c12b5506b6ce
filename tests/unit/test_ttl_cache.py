"""The bounded in-process cache: never past its bound, expired entries dropped."""

from __future__ import annotations

from scribe.clients.cache import TtlCache


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_never_exceeds_its_bound_and_drops_the_oldest_first() -> None:
    cache: TtlCache[str, int] = TtlCache(3, 60, clock=Clock())
    for n in range(1000):
        cache.put(f"author {n}", n)
        assert len(cache) <= 3
    assert [cache.get(f"author {n}") for n in (996, 997, 998, 999)] == [None, 997, 998, 999]


def test_expired_entries_are_dropped_not_kept() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(100, 60, clock=clock)
    for n in range(50):
        cache.put(f"old {n}", n)
    clock.now += 61
    assert cache.get("old 0") is None  # expired on read
    cache.put("new", 1)  # every put sweeps the expired ones
    assert len(cache) == 1 and cache.get("new") == 1


def test_storing_a_key_again_refreshes_it() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(2, 60, clock=clock)
    cache.put("a", 1)
    clock.now += 50
    cache.put("b", 2)
    cache.put("a", 3)
    clock.now += 20  # the first "a" would have expired
    assert cache.get("a") == 3 and cache.get("b") == 2


def test_zero_entries_caches_nothing() -> None:
    cache: TtlCache[str, int] = TtlCache(0, 60)
    cache.put("a", 1)
    assert len(cache) == 0 and cache.get("a") is None
