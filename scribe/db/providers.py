"""The provider tables: each account's state as some process last reported it
(provider_states), the processes using each account lately (provider_users), and the
operator's resumes (provider_resumes). ``ProviderTables`` is what the composition root hands
the provider package (scribe.providers), which imports nothing of this package."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from scribe.db import queue_items
from scribe.db.pool import Pool, connection_errors
from scribe.db.queries import sql


class AccountState(Protocol):
    """What an account's state records (scribe.providers.account.Condition has it)."""

    @property
    def account(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def since(self) -> datetime: ...
    @property
    def reopens_in(self) -> float | None: ...
    @property
    def failures(self) -> int: ...


@dataclass(frozen=True, slots=True)
class ProviderWaiting:
    """An account (or provider) some process last reported not up."""

    provider: str
    state: str  # down, paused, rate_limited
    reason: str | None
    since: datetime


@dataclass(frozen=True, slots=True)
class ProviderTables:
    """The provider tables of one pool, as the provider package uses them."""

    pool: Pool

    async def save_state(self, condition: AccountState, reported_by: str) -> None:
        """Record an account's state (upsert by account)."""
        reopens = condition.reopens_in
        until = None if reopens is None else datetime.now(UTC) + timedelta(seconds=reopens)
        async with connection_errors():
            await self.pool.execute(
                sql("save_provider_state"),
                condition.account,
                str(condition.status),
                condition.reason,
                condition.since,
                until,
                condition.failures,
                reported_by,
            )

    async def share_accounts(
        self, owner: str, used: Sequence[str], known: Sequence[str], window_seconds: float
    ) -> dict[str, int]:
        """Record that ``owner`` used the ``used`` accounts just now; for each ``known``
        account, how many processes (``owner`` included) used it within ``window_seconds``."""
        async with connection_errors():
            rows = await self.pool.fetch(
                sql("share_provider_accounts"), owner, list(used), list(known), window_seconds
            )
        return {row["account"]: row["users"] for row in rows}

    async def leave_accounts(self, owner: str) -> None:
        """``owner`` stops: it no longer counts as a user of any account."""
        async with connection_errors():
            await self.pool.execute(sql("leave_provider_accounts"), owner)

    async def resumes(self) -> dict[str, datetime]:
        """When an operator last resumed each provider or account, by name."""
        async with connection_errors():
            rows = await self.pool.fetch(sql("provider_resumes"))
        return {row["name"]: row["resumed_at"] for row in rows}

    async def wake_waiters(self, name: str) -> None:
        """Items waiting for ``name`` (or an account of it) are due now."""
        await queue_items.wake_provider_waiters(self.pool, name)


async def providers_waiting(pool: Pool) -> list[ProviderWaiting]:
    """Accounts reported down, paused or rate-limited (and not stale), by name."""
    async with connection_errors():
        rows = await pool.fetch(sql("providers_waiting"))
    return [ProviderWaiting(**dict(row)) for row in rows]


async def provider_states(pool: Pool) -> list[dict[str, object]]:
    """Every account's last reported state (the queue_providers view), for the CLI."""
    async with connection_errors():
        rows = await pool.fetch(sql("queue_providers"))
    return [dict(row) for row in rows]


async def resume(pool: Pool, name: str, by: str) -> list[str]:
    """An operator ends the wait of ``name`` (a provider or an account) in every process: the
    resume is recorded (each process applies it within its sharing interval), the accounts
    are reported up and their waiting items are due now. The accounts that were not up."""
    async with connection_errors():
        rows = await pool.fetch(sql("resume_provider"), name, by)
    await queue_items.wake_provider_waiters(pool, name)
    return [row["provider"] for row in rows]
