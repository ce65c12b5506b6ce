"""Analyses that depend only on their input, shared by every item that asks for one.

A template's type and placeholders depend on the template alone, so a batch of 100 items with
one template needs one model call, not 100. ``SharedAnalyses`` keeps analyses by key (the
caller's hash of everything the answer depends on: the text, the model, the prompt's version):

- in this process, a bounded, expiring map, and one computation per key at a time: 8 slots
  starting items of one batch together make one call, the other 7 wait for it;
- across processes and restarts, an optional ``AnalysisStore`` (the ``template_analyses`` table),
  read on a miss here and written after a computation, so another worker, or a retry after a
  crash, reuses what was paid for.

The store is an optimisation: when it is unreachable the analysis is computed (and kept here)
without it, and the database outage shows where it matters, at the item's next checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, cast

from pydantic import BaseModel, ValidationError

from scribe.clients.cache import SingleFlight, TtlCache
from scribe.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

# Per process. An analysis is a few hundred bytes (a template type and its placeholders; at most
# ~20 kB with 100 long placeholders), so the map stays under a few MB even when full.
MAX_ANALYSES = 256
ANALYSIS_CACHE_SECONDS = 6 * 3600.0  # how long this process trusts an analysis without asking

M = TypeVar("M", bound=BaseModel)


class AnalysisStore(Protocol):
    """Analyses every process shares (``scribe.db.template_analyses``). Both methods raise
    DatabaseUnavailable when the store cannot be reached."""

    async def load(self, key: str) -> dict[str, Any] | None:
        """The stored analysis of ``key``, or None."""
        ...

    async def save(self, key: str, analysis: dict[str, Any]) -> None:
        """Store the analysis of ``key`` (a concurrent save of the same key is harmless)."""
        ...


class SharedAnalyses:
    """Analyses by key: this process's bounded map over an optional shared store, and one
    computation per key at a time (see the module docstring)."""

    def __init__(
        self,
        store: AnalysisStore | None = None,
        *,
        max_entries: int = MAX_ANALYSES,
        ttl_seconds: float = ANALYSIS_CACHE_SECONDS,
    ) -> None:
        self._store = store
        self._cache: TtlCache[str, BaseModel] = TtlCache(max_entries, ttl_seconds)
        self._flights: SingleFlight[str, BaseModel] = SingleFlight()

    async def get(
        self, key: str, output: type[M], compute: Callable[[], Awaitable[M]]
    ) -> tuple[M, bool]:
        """The analysis of ``key`` and whether this call computed it (False: reused, from this
        process or the store). ``compute``'s errors reach every caller waiting for it."""
        cached = self._cache.get(key)
        if isinstance(cached, output):
            return cached, False
        computed = False

        async def lead() -> BaseModel:
            nonlocal computed
            value = await self._load(key, output)
            if value is None:
                value = await compute()
                computed = True
                await self._save(key, value)
            self._cache.put(key, value)
            return value

        value = await self._flights.run(key, lead)
        return cast(M, value), computed

    async def _load(self, key: str, output: type[M]) -> M | None:
        if self._store is None:
            return None
        try:
            document = await self._store.load(key)
        except DatabaseUnavailable as exc:
            log.warning("stored analyses unreachable, asking the model: %s", exc)
            return None
        if document is None:
            return None
        try:
            return output.model_validate(document)
        except ValidationError:
            log.info("stored analysis %s no longer validates, asking the model", key[:12])
            return None

    async def _save(self, key: str, value: BaseModel) -> None:
        if self._store is None:
            return
        try:
            await self._store.save(key, value.model_dump(mode="json"))
        except DatabaseUnavailable as exc:
            log.warning("analysis not stored (kept in this process only): %s", exc)
