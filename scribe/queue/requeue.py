"""Operator re-queue of failed items (``scribe queue retry`` and POST /api/admin/queue/retry).

One statement in one transaction picks the failed items matching every given filter and puts
them back to pending: attempts and crash count start over, the age bound restarts, the
checkpoint is kept (the runner resumes after the last completed step when it still validates,
else starts over) and the item's events stay, with a 'requeue' event recording the error it had.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from scribe.db import queue_items
from scribe.db.pool import Pool
from scribe.errors import InvalidRequest

log = logging.getLogger(__name__)

REQUEUE_LIMIT = 10_000  # items per call: a larger backlog is re-queued in several calls
# The failure times a filter may name. Python and Postgres accept years 1-9999, but a time near
# either end cannot be moved to UTC (0001-01-01T00:00+14:00 is in year 0) and the query fails.
FAILED_SINCE_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
FAILED_SINCE_END = datetime(2101, 1, 1, tzinfo=UTC)  # exclusive: the year 2100 is the last


def bounded_since(value: datetime) -> datetime:
    """``value`` in UTC (a time without an offset is UTC); ValueError unless it falls in the
    years 1970-2100. Compared before it is converted, so no year overflows."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if not FAILED_SINCE_EARLIEST <= value < FAILED_SINCE_END:
        raise ValueError("must be a time in the years 1970-2100")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class RequeueFilter:
    """Which failed items to re-queue: every given field must match; at least one is given."""

    ids: Sequence[uuid.UUID] | None = None
    user_id: uuid.UUID | None = None
    failed_since: datetime | None = None
    step: str | None = None

    def check(self) -> None:
        """InvalidRequest when no filter is given (re-queueing every failure by accident). A
        step that is no job's step matches nothing (the admin route validates step names)."""
        if not self.ids and self.user_id is None and self.failed_since is None and not self.step:
            raise InvalidRequest("Give at least one of ids, user_id, failed_since or step.")


async def requeue(
    pool: Pool, which: RequeueFilter, *, requested_by: str, limit: int = REQUEUE_LIMIT
) -> list[uuid.UUID]:
    """Re-queue the failed items ``which`` selects (at most ``limit``); their ids."""
    which.check()
    ids = await queue_items.requeue_failed(
        pool,
        ids=list(which.ids) if which.ids else None,
        user_id=which.user_id,
        failed_since=which.failed_since,
        step=which.step,
        limit=limit,
        requested_by=requested_by,
    )
    log.info("%s re-queued %d failed item(s) (%s)", requested_by, len(ids), which)
    return ids
