"""The template_analyses table: a template's analysis, stored once and read by every process
(the ``AnalysisStore`` of ``scribe.clients.analyses``)."""

from __future__ import annotations

from typing import Any

from scribe.db.pool import Pool, connection_errors
from scribe.db.queries import sql
from scribe.db.queue_items import storable


class TemplateAnalysisStore:
    """Analyses by key in the database; DatabaseUnavailable when it cannot be reached."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def load(self, key: str) -> dict[str, Any] | None:
        """The stored analysis of ``key``, or None."""
        async with connection_errors():
            value = await self._pool.fetchval(sql("get_template_analysis"), key)
        return value if isinstance(value, dict) else None

    async def save(self, key: str, analysis: dict[str, Any]) -> None:
        """Store the analysis of ``key`` (the last write wins; they are the same answer)."""
        async with connection_errors():
            await self._pool.execute(sql("save_template_analysis"), key, storable(analysis))
