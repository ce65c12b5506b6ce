"""A database outage logged once, not once per request.

Repositories note on the current request whether the database answered
(``connection_errors``); the HTTP layer notes the requests it refused with a 503. ``OutageLog``
turns that into one WARNING when refusals start and one INFO, with the count, when a request
finds the database answering again. The state travels in a context variable set per request, so
nothing here is a process global and a request that never touches the database proves nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

log = logging.getLogger(__name__)


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
        if outcome.refused is not None:
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
