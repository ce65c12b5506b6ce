"""The provider tables: circuit-breaker transitions reported by any process (provider_states)
and the processes using each provider account lately (provider_users)."""

from __future__ import annotations

from collections.abc import Sequence
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


async def share_accounts(
    pool: Pool, owner: str, used: Sequence[str], known: Sequence[str], window_seconds: float
) -> dict[str, int]:
    """Record that ``owner`` used the ``used`` accounts just now; for each ``known`` account,
    how many processes (``owner`` included) used it within ``window_seconds``."""
    async with connection_errors():
        rows = await pool.fetch(
            sql("share_provider_accounts"), owner, list(used), list(known), window_seconds
        )
    return {row["account"]: row["users"] for row in rows}


async def leave_accounts(pool: Pool, owner: str) -> None:
    """``owner`` stops: it no longer counts as a user of any account."""
    async with connection_errors():
        await pool.execute(sql("leave_provider_accounts"), owner)
