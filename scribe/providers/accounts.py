"""Every provider account of the process, by key, and the queue's view of them.

A key is an account (``anthropic:claude-sonnet``, ``openai:<base url>``, ``exa``, ``arxiv``); a
bare provider name (``anthropic``, as a step may declare it) stands for every account of it.
``Accounts`` is what the composition root hands the queue engine as its ``ProviderGate``
(``scribe.queue.waiting``): ``admit`` before a unit, ``failed``/``succeeded`` after it. Breaker
transitions are written at once through the ``StateStore`` the composition root injects (the
database's provider tables); everything else is shared by ``scribe.providers.sharing``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from scribe.errors import DatabaseUnavailable
from scribe.providers.account import Account, Breaker, Clock, Condition, Status

log = logging.getLogger(__name__)

PROVIDERS = ("anthropic", "openai", "exa", "arxiv")


class StateStore(Protocol):
    """Where account states are shared between processes (scribe.db.providers)."""

    async def save_state(self, condition: Condition, reported_by: str) -> None: ...


@dataclass(slots=True)
class Hold:
    """Why a unit may not call its account now, and when its item should come back."""

    account: str
    reason: str
    seconds: float


class Accounts:
    """The process's account records (see the module docstring)."""

    def __init__(
        self,
        caps: Mapping[str, float] | None = None,
        *,
        breaker: Breaker | None = None,
        clock: Clock | None = None,
        store: StateStore | None = None,
        owner: str = "",
    ) -> None:
        self._caps = dict(caps or {})
        self._accounts: dict[str, Account] = {}
        self.breaker = breaker or Breaker()
        self.clock = clock or Clock()
        self.store = store
        self.owner = owner

    def get(
        self, key: str, *, caps: Mapping[str, float] | None = None, burst: float | None = None
    ) -> Account:
        """The account ``key`` (made on first use; ``caps`` override the shared caps)."""
        account = self._accounts.get(key)
        if account is None:
            account = Account(
                key,
                caps={**self._caps, **(caps or {})},
                burst=burst,
                breaker=self.breaker,
                clock=self.clock,
            )
            self._accounts[key] = account
        return account

    def all(self) -> list[Account]:
        """Every account made so far, by key."""
        return [self._accounts[key] for key in sorted(self._accounts)]

    def matching(self, name: str) -> list[Account]:
        """``name``'s accounts: that account, or every account of a provider."""
        return [a for a in self.all() if a.name == name or a.name.startswith(f"{name}:")]

    def set_shares(self, shares: Mapping[str, int]) -> None:
        """Each named account takes ``1/shares[key]`` of itself (processes using it)."""
        for key, share in shares.items():
            if key in self._accounts:
                self._accounts[key].set_share(share)

    def active(self, window: float) -> list[str]:
        """The accounts this process used within ``window`` seconds, or is waiting for now."""
        return [
            a.name for a in self.all() if a.waiting or a.busy or a.now() - a.last_used <= window
        ]

    def waiting(self) -> list[Condition]:
        """The conditions of the accounts that are not up (down, paused, rate-limited)."""
        return [c for a in self.all() if (c := a.condition()).status is not Status.UP]

    def resume(self, name: str) -> list[str]:
        """An operator ends the wait of ``name``'s accounts: those that were waiting."""
        return [a.name for a in self.matching(name) if a.resume()]

    # ---- the queue's ProviderGate ----

    def admit(self, provider: str) -> Hold | None:
        """Let a unit needing ``provider`` call it now (taking a down account's due probe), or
        park its item: the Hold says on what and for how long."""
        for account in self.matching(provider) or [self.get(provider)]:
            if not account.take_probe():
                return self._hold(account)
        return None

    async def failed(self, provider: str, reason: str) -> Hold | None:
        """A unit failed for ``provider``'s reasons: its account counts the fault; a Hold when
        the account is now closed (the item parks), else None (it retries with backoff)."""
        account = self.get(provider)
        if account.failed(reason):
            await self._save(account)
        if account.closed_for() is None:
            return None
        return self._hold(account)

    async def succeeded(self, provider: str) -> bool:
        """A unit's calls to ``provider`` worked: whether that brought an account back (its
        waiting items may come back at once)."""
        back = False
        for account in self.matching(provider):
            if account.succeeded():
                back = True
                await self._save(account)
        return back

    def _hold(self, account: Account) -> Hold:
        condition = account.condition()
        reason = f"{account.name} {condition.status}: {condition.reason}"
        return Hold(account.name, reason, account.park())

    async def _save(self, account: Account) -> None:
        if self.store is None:
            return
        try:
            await self.store.save_state(account.condition(), self.owner)
        except DatabaseUnavailable as exc:  # the in-process state works on without it
            log.warning("could not record provider account %s state: %s", account.name, exc)
