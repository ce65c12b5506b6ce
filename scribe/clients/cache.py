"""A small in-process cache with a size bound and a time to live, and single-flight calls."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
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


class SingleFlight(Generic[K, V]):
    """Concurrent callers asking for the same key share one computation.

    The first caller of a key computes; callers arriving while it runs await its result (or its
    error). A cancelled first caller cancels nobody else: a waiter then computes itself. Only
    keys being computed are held, so the map is bounded by the callers at that moment.
    """

    def __init__(self) -> None:
        self._inflight: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    async def run(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        """``compute()``'s value, shared with every concurrent caller of ``key``."""
        while (pending := self._inflight.get(key)) is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this caller was cancelled, not the computation
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await compute()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(value)
        return value
