"""A small in-process cache with a size bound and a time to live."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """At most ``max_entries`` values, each kept ``ttl_seconds`` after it was stored.

    Entries are kept in the order they were stored, which is also the order they expire in, so
    every ``put`` drops the expired ones from the front in O(expired) and then the oldest ones
    past the bound. ``max_entries=0`` caches nothing.
    """

    def __init__(
        self,
        max_entries: int,
        ttl_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The live value for ``key``, or None (an expired one is dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock() - entry[0] >= self.ttl_seconds:
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: K, value: V) -> None:
        """Store ``value``; drop expired entries, then the oldest past the bound."""
        now = self._clock()
        self._entries.pop(key, None)
        self._entries[key] = (now, value)
        while self._entries:
            stored, _ = next(iter(self._entries.values()))
            if now - stored < self.ttl_seconds and len(self._entries) <= self.max_entries:
                break
            self._entries.popitem(last=False)
