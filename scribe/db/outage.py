"""A database outage logged once, not once per request.

Repositories note on the current request whether the database answered
(``connection_errors``); the HTTP layer notes the requests it refused with a 503. ``OutageLog``
turns that into one WARNING when refusals start and one INFO, with the count, when a request
finds the database answering again. The state travels in a context variable set per request, so
nothing here is a process global and a request that never touches the database proves nothing.

A full disk is apart: the database still answers reads, so an answered request proves nothing
about it. Its refusals log one WARNING per ``FULL_LOG_SECONDS`` (with the count since the last).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from scribe.errors import DatabaseFull

log = logging.getLogger(__name__)

FULL_LOG_SECONDS = 60.0


@dataclass
class RequestOutcome:
    """What one request learnt about the database."""

    answered: bool = False
    refused: BaseException | None = None


_current: ContextVar[RequestOutcome | None] = ContextVar("scribe_db_outcome", default=None)


def note_answered() -> None:
    """The database answered a statement of the current request (no-op outside a request)."""
    outcome = _current.get()
    if outcome is not None:
        outcome.answered = True


def note_refused(exc: BaseException) -> None:
    """The current request is answered 503 because the database is unavailable."""
    outcome = _current.get()
    if outcome is not None:
        outcome.refused = exc


class OutageLog:
    """One WARNING when the database starts refusing requests, one INFO when it is back."""

    def __init__(self) -> None:
        self.down_since: float | None = None
        self.refused = 0
        self.full_logged_at: float | None = None
        self.full_refused = 0  # refused for a full disk since the last line about it

    @contextmanager
    def watching(self) -> Iterator[RequestOutcome]:
        """Track one request; settle the outage state when it ends."""
        outcome = RequestOutcome()
        token = _current.set(outcome)
        try:
            yield outcome
        finally:
            _current.reset(token)
            self.settle(outcome)

    def settle(self, outcome: RequestOutcome) -> None:
        """Count a refused request (logging the first), or end the outage on an answer."""
        if isinstance(outcome.refused, DatabaseFull):
            self._settle_full(outcome.refused)
        elif outcome.refused is not None:
            if self.down_since is None:
                self.down_since, self.refused = time.monotonic(), 0
                cause = outcome.refused.__cause__ or outcome.refused
                log.warning(
                    "database unavailable (%s: %s); answering 503 until it is back",
                    type(cause).__name__,
                    str(cause)[:200] or outcome.refused,
                )
            self.refused += 1
        elif outcome.answered and self.down_since is not None:
            log.info(
                "database available again after %.1f s; %d request(s) were refused",
                time.monotonic() - self.down_since,
                self.refused,
            )
            self.down_since, self.refused = None, 0

    def _settle_full(self, refused: DatabaseFull) -> None:
        now = time.monotonic()
        self.full_refused += 1
        if self.full_logged_at is not None and now - self.full_logged_at < FULL_LOG_SECONDS:
            return
        cause = refused.__cause__ or refused
        since = "" if self.full_logged_at is None else f" ({self.full_refused} since the last line)"
        log.warning(
            "database disk full (%s); requests that store anything answer 503 until space is"
            " freed%s",
            str(cause).splitlines()[0][:200] if str(cause) else type(cause).__name__,
            since,
        )
        self.full_logged_at, self.full_refused = now, 0
