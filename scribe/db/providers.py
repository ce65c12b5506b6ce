"""The provider_states table: circuit-breaker transitions reported by any process."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from scribe.db.pool import Pool, connection_errors
from scribe.db.queries import sql


class ProviderState(Protocol):
    """What a breaker transition records (scribe.clients.pacing.ProviderState has it)."""

    @property
    def provider(self) -> str: ...
    @property
    def up(self) -> bool: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def since(self) -> datetime: ...
    @property
    def failures(self) -> int: ...


@dataclass(frozen=True, slots=True)
class ProviderDown:
    """A provider some process last reported down."""

    provider: str
    reason: str | None
    since: datetime


async def save_state(
    pool: Pool, state: ProviderState, seconds_to_probe: float, reported_by: str
) -> None:
    """Record a breaker transition (upsert by provider)."""
    next_probe = None if state.up else datetime.now(UTC) + timedelta(seconds=seconds_to_probe)
    async with connection_errors():
        await pool.execute(
            sql("save_provider_state"),
            state.provider,
            "up" if state.up else "down",
            state.reason,
            state.since,
            next_probe,
            state.failures,
            reported_by,
        )


async def providers_down(pool: Pool) -> list[ProviderDown]:
    """Providers reported down, by name."""
    async with connection_errors():
        rows = await pool.fetch(sql("providers_down"))
    return [ProviderDown(**dict(row)) for row in rows]
