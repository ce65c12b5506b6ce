"""A database outage as the queue sees it, logged once.

While the database is away or cannot store anything (a full disk), every part of the consumer
fails at its own pace: claims every second, the lease heartbeat every TTL/4, each job's fenced
write with its backoff, the reaper every round. ``QueueOutage`` turns that into one WARNING per
kind of work when that work first fails, and one INFO, with the counts, once every kind that
failed has succeeded again. It also remembers the last failure: the reaper gives the owners one
lease to renew after it before judging leases that lapsed meanwhile (see ``settled``).

A kind ends only on its own success: a full disk refuses inserts while small updates that fit
in their page still succeed, so one kind's success proves nothing about another's. For the same
reason the outage ends only with a success ``QUIET_SECONDS`` after the last failure: a write that
happened to fit does not end it (and the next one that does not fit does not start a new one).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from scribe.errors import DatabaseFull, DatabaseUnavailable

log = logging.getLogger(__name__)

QUIET_SECONDS = 2.0


def describe(exc: DatabaseUnavailable) -> str:
    """The error and, in a word, its cause (the server's first line, for a full disk)."""
    cause = exc.__cause__
    if cause is None:
        return str(exc)
    detail = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    return f"{exc} ({detail[:200]})"


class QueueOutage:
    """The current outage of one consumer: which kinds of work fail, since when."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.since: float | None = None
        self.last_failure_at: float | None = None
        self.failing: set[str] = set()  # kinds of work failing now
        self.tries: Counter[str] = Counter()  # failures per kind in this outage
        self.full = False  # a failure said the disk is full

    @property
    def active(self) -> bool:
        """Some kind of work is failing now."""
        return bool(self.failing)

    def failed(self, kind: str, exc: DatabaseUnavailable) -> None:
        """``kind`` of work failed because of the database; the first time, one WARNING."""
        if not self.failing:
            self.since = self._clock()
        if kind not in self.tries:  # first failure of this kind in this outage
            waits = "waits for free space" if isinstance(exc, DatabaseFull) else "waits"
            log.warning(
                "queue %s failed: %s; the queue %s and retries, charging no item",
                kind,
                describe(exc),
                waits,
            )
        self.full = self.full or isinstance(exc, DatabaseFull)
        self.failing.add(kind)
        self.tries[kind] += 1
        self.last_failure_at = self._clock()

    def succeeded(self, kind: str) -> None:
        """``kind`` of work succeeded; the outage ends (one INFO) when no kind fails any more
        and none failed for QUIET_SECONDS."""
        self.failing.discard(kind)
        now = self._clock()
        if self.since is None or self.failing or now - self._last_failure() < QUIET_SECONDS:
            return
        log.info(
            "queue: the database %s again after %.1f s (failed tries: %s)",
            "stores" if self.full else "answers",
            now - self.since,
            ", ".join(f"{name} {count}" for name, count in sorted(self.tries.items())),
        )
        self.since, self.full = None, False
        self.tries.clear()

    def _last_failure(self) -> float:
        return self.last_failure_at if self.last_failure_at is not None else float("-inf")

    def settled(self, seconds: float) -> bool:
        """No work failed for the database within the last ``seconds``."""
        last = self.last_failure_at
        return last is None or self._clock() - last >= seconds
