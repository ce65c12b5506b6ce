"""Dividing each provider account among the processes that use it.

Every process (``scribe serve``, ``serve --no-worker``, ``worker``) runs one ``AccountSharing``
loop: every ``interval`` seconds it records in the ``provider_users`` table which accounts it
used lately (a call waiting, out, or made within ``window`` seconds) and sets each pacer's share
to the number of processes that used that account within the window, itself counted in.

Why usage rather than the queue's leases: a serve-only process generating templates holds no
lease but calls the same account, so it must count (and must divide its own budget before its
first call: the others' rows are read for every account it knows, used or not). And a process
that stops using an account (its part of the batch is done, or it idles) drops out of the count
within ``window`` seconds, so the others take the whole budget instead of pacing the batch's
last items at half speed. A process that stops cleanly leaves at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from scribe.clients.pacing import Pacers
from scribe.db import providers as providers_db
from scribe.db.pool import Pool
from scribe.errors import DatabaseUnavailable
from scribe.process.background import running

log = logging.getLogger(__name__)


class AccountSharing:
    """Keeps this process's pacer shares current (see the module docstring)."""

    def __init__(
        self, pool: Pool, pacers: Pacers, *, interval: float, window: float, owner: str = ""
    ) -> None:
        self.owner = owner or f"pacing-{uuid.uuid4().hex[:12]}"
        self._pool = pool
        self._pacers = pacers
        self._interval = interval
        self._window = window

    async def refresh(self) -> dict[str, int]:
        """Record what this process uses; set and return every known account's share."""
        known = [pacer.name for pacer in self._pacers.all()]
        if not known:
            return {}
        shares = await providers_db.share_accounts(
            self._pool, self.owner, self._pacers.active(self._window), known, self._window
        )
        self._pacers.set_shares(shares)
        return shares

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
                await asyncio.shield(providers_db.leave_accounts(self._pool, self.owner))
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
