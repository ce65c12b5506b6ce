"""What the processes using one provider account share, through the database.

Every process runs one ``AccountSharing`` loop; every ``interval`` seconds it
- records the accounts it used lately (a call waiting, out, or made within ``window``) and sets
  each account's share to the processes that used it within the window, itself counted in
  (usage, not leases: a serve-only process generating templates calls the same accounts);
- writes the accounts whose state changed (/health, /metrics and ``scribe providers`` show
  every process's accounts);
- applies the operator's resumes (``scribe providers resume``) recorded since the last round.
The database is reached only through the ``SharedTables`` the composition root passes in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Protocol

from scribe.errors import DatabaseUnavailable
from scribe.process.background import running
from scribe.providers.account import Status
from scribe.providers.accounts import Accounts, StateStore

log = logging.getLogger(__name__)

REWRITE_SECONDS = 60.0  # a state that is not up is written again this often


class SharedTables(StateStore, Protocol):
    """The database functions the sharing loop needs (scribe.db.providers.ProviderTables):
    record a process's use and count each account's users, leave, read the operator's resumes,
    wake the items waiting for an account."""

    async def share_accounts(
        self, owner: str, used: Sequence[str], known: Sequence[str], window_seconds: float
    ) -> dict[str, int]: ...
    async def leave_accounts(self, owner: str) -> None: ...
    async def resumes(self) -> dict[str, datetime]: ...
    async def wake_waiters(self, name: str) -> None: ...


class AccountSharing:
    """Keeps this process's accounts shared (see the module docstring)."""

    def __init__(
        self,
        tables: SharedTables,
        accounts: Accounts,
        *,
        interval: float,
        window: float,
        owner: str = "",
    ) -> None:
        self.owner = owner or accounts.owner or f"pacing-{uuid.uuid4().hex[:12]}"
        self._tables = tables
        self._accounts = accounts
        self._interval = interval
        self._window = window
        self._written: dict[str, tuple[Status, float]] = {}  # status, when (clock time)
        self._resumed: dict[str, datetime] | None = None  # None: not read yet

    async def refresh(self) -> dict[str, int]:
        """One round: shares (set and returned), state changes, resumes."""
        await self._apply_resumes()
        await self._write_changes()
        known = [account.name for account in self._accounts.all()]
        if not known:
            return {}
        shares = await self._tables.share_accounts(
            self.owner, self._accounts.active(self._window), known, self._window
        )
        self._accounts.set_shares(shares)
        return shares

    async def _write_changes(self) -> None:
        """Write the accounts whose status changed (and, while one is not up, again every
        REWRITE_SECONDS: a report nobody renews is taken as stale)."""
        for account in self._accounts.all():
            condition, now = account.condition(), account.now()
            status, at = self._written.get(account.name, (Status.UP, now))
            if status is condition.status and (status is Status.UP or now - at < REWRITE_SECONDS):
                continue
            await self._tables.save_state(condition, self.owner)
            self._written[account.name] = (condition.status, now)
            if condition.status is Status.UP:
                await self._tables.wake_waiters(account.name)

    async def _apply_resumes(self) -> None:
        resumed = await self._tables.resumes()
        seen, self._resumed = self._resumed, resumed
        if seen is None:
            return  # what was resumed before this process started does not concern it
        for name, at in resumed.items():
            if seen.get(name) != at:
                self._accounts.resume(name)

    async def run(self) -> None:
        """Refresh every ``interval`` seconds until cancelled; then leave every account."""
        try:
            while True:
                try:
                    await self.refresh()
                except DatabaseUnavailable as exc:  # the shares stay as they were meanwhile
                    log.warning("could not share the provider accounts: %s", exc)
                await asyncio.sleep(self._interval)
        finally:
            try:
                await asyncio.shield(self._tables.leave_accounts(self.owner))
            except (DatabaseUnavailable, asyncio.CancelledError):
                log.info("could not leave the provider accounts; they age out")


@contextlib.asynccontextmanager
async def sharing_accounts(sharing: AccountSharing) -> AsyncIterator[AccountSharing]:
    """Run ``sharing`` for the duration of the block (a tracked, named task)."""
    async with running(
        sharing.run(),
        name="provider-account-sharing",
        if_it_dies="stopped; shares stay as they were",
    ):
        yield sharing
