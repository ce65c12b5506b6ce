"""The queue_items table: enqueue, list and cancel (API side); claim, lease, checkpoint and finish
(worker side). Worker writes take a ``Fence`` and return False when the lease was lost."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scribe.db.pool import Connection, Pool, connection_errors
from scribe.db.queries import sql
from scribe.errors import QuotaUsedUp

log = logging.getLogger(__name__)

# GET /api/queue/ (and its stream) shows at most this many items: every live one first, then the
# newest finished ones of the last 24 h. It is above the default pending quota (200), so a
# normal user always sees all their live items.
RECENT_ITEMS_LIMIT = 300
DEFAULT_KIND = "email"  # the job kind of items enqueued without one (the column's default, 0008)
PENDING_RETRY_SECONDS = 60  # Retry-After when the pending quota is full: items finish meanwhile


def storable(value: Any) -> Any:
    """``value`` with U+0000 removed from every string (dict keys included). Postgres text and
    jsonb cannot hold it, and pipeline output carries text from web pages and search results:
    one NUL there made the checkpoint or the completion fail and the job crash on every retry."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class NewItem:
    """One recipient to enqueue."""

    recipient_name: str
    recipient_interest: str


@dataclass(frozen=True, slots=True)
class QueueQuota:
    """A user's queue limits: items per UTC day and live (pending or processing) at once."""

    daily_items: int
    max_pending: int


def _hours_minutes(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def check_quota(quota: QueueQuota, adding: int, today: int, live: int, reset: float) -> None:
    """QuotaUsedUp (naming the limit and when it resets) when ``adding`` more items would pass
    either limit; logs one line when it does."""
    if today + adding > quota.daily_items:
        log.info(
            "queue quota: daily limit %d reached (%d today, +%d)", quota.daily_items, today, adding
        )
        raise QuotaUsedUp(
            f"Daily limit reached: at most {quota.daily_items} emails can be queued per day "
            f"(you have queued {today} today; this request adds {adding}). The limit resets at "
            f"00:00 UTC, in {_hours_minutes(reset)}.",
            retry_after=reset,
        )
    if live + adding > quota.max_pending:
        log.info(
            "queue quota: pending limit %d reached (%d live, +%d)", quota.max_pending, live, adding
        )
        raise QuotaUsedUp(
            f"Too many emails waiting: at most {quota.max_pending} can be pending at once (you "
            f"have {live}; this request adds {adding}). Add more once some have finished.",
            retry_after=PENDING_RETRY_SECONDS,
        )


@dataclass(frozen=True, slots=True)
class QueueItemView:
    """A row of GET /api/queue/."""

    id: uuid.UUID
    recipient_name: str
    status: str
    position: int | None
    email_id: uuid.UUID | None
    error_message: str | None
    current_step: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TaskView:
    """One item as /api/email/status shows it."""

    id: uuid.UUID
    status: str
    current_step: str | None
    step_timings: dict[str, float]
    email_id: uuid.UUID | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class Fence:
    """Who may write an item: the owner holding claim number ``claim`` of item ``id``. The
    claim counter (not ``attempts``, which counts only the item's own failures) is the fence."""

    id: uuid.UUID
    owner: str
    claim: int

    @property
    def key(self) -> tuple[uuid.UUID, int]:
        """The job's identity: (item, claim). One process may hold an old and a new claim of
        the same item at once (its lease lapsed and it re-claimed the item)."""
        return self.id, self.claim


@dataclass(frozen=True, slots=True)
class ClaimedItem:
    """An item a consumer claimed, with what it needs to run (or resume) it."""

    id: uuid.UUID
    kind: str  # the job kind: which handler runs it
    user_id: uuid.UUID
    recipient_name: str
    recipient_interest: str
    email_template: str
    claims: int
    attempts: int  # the item's own failures so far (charged against max_attempts)
    max_attempts: int
    checkpoint: dict[str, Any] | None
    cancel_requested: bool
    # Its worker was lost while it ran beside others: it runs alone (its owner claims nothing
    # else meanwhile), so a crash now is its own.
    suspect: bool = False

    def fence(self, owner: str) -> Fence:
        """The fence of this claim."""
        return Fence(self.id, owner, self.claims)


# --- API side ---


async def enqueue(
    pool: Pool,
    user_id: uuid.UUID,
    items: Sequence[NewItem],
    email_template: str,
    *,
    max_attempts: int,
    idempotency_key: str | None = None,
    quota: QueueQuota | None = None,
    kind: str = DEFAULT_KIND,
) -> list[uuid.UUID]:
    """Insert items (jobs of ``kind``) in one transaction and wake consumers; with an
    idempotency key already used by this user, return the ids of that earlier request instead
    (race-safe).

    With a ``quota`` (None: exempt), QuotaUsedUp when the items would pass it. The check holds
    a per-user lock until commit, so concurrent requests, from any process, are counted one
    after the other and cannot both slip under the limit.
    """
    ids = [uuid.uuid4() for _ in items]
    if quota is not None and idempotency_key is None:
        # Refuse a request that is clearly over quota without taking the lock: a flood of them
        # would otherwise queue up holding pool connections while the first one is counted.
        async with connection_errors():
            usage = await pool.fetchrow(sql("queue_quota_usage"), user_id)
        assert usage is not None
        check_quota(quota, len(items), usage["today"], usage["live"], usage["reset_seconds"])
    async with connection_errors(), pool.acquire() as conn, conn.transaction():
        if idempotency_key is not None:
            await conn.execute(sql("lock_idempotency_key"), user_id, idempotency_key)
            rows = await conn.fetch(sql("find_idempotent_batch"), user_id, idempotency_key)
            if rows:
                return [row["id"] for row in rows]
        if quota is not None:
            await conn.execute(sql("lock_user_quota"), user_id, "queue")
            usage = await conn.fetchrow(sql("queue_quota_usage"), user_id)
            assert usage is not None
            check_quota(quota, len(items), usage["today"], usage["live"], usage["reset_seconds"])
        await conn.execute(
            sql("insert_queue_items"),
            user_id,
            uuid.uuid4(),  # the batch: one stored copy of the template
            ids,
            [item.recipient_name for item in items],
            [item.recipient_interest for item in items],
            email_template,
            max_attempts,
            idempotency_key,
            kind,
        )
    return ids


async def list_recent(
    pool: Pool, user_id: uuid.UUID, *, limit: int = RECENT_ITEMS_LIMIT
) -> list[QueueItemView]:
    """The user's visible items of the last 24 hours, oldest first: at most ``limit``, live
    ones first, then the newest finished ones."""
    async with connection_errors():
        rows = await pool.fetch(sql("list_recent_queue_items"), user_id, limit)
    return [QueueItemView(**dict(row)) for row in rows]


async def get_task(pool: Pool, item_id: uuid.UUID, user_id: uuid.UUID) -> TaskView | None:
    """One of the user's items, or None."""
    async with connection_errors():
        row = await pool.fetchrow(sql("get_queue_item"), item_id, user_id)
    return None if row is None else TaskView(**dict(row))


async def cancel(pool: Pool, item_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    """Cancel one of the user's live items; its status afterwards ('cancelled' or, while the owner
    stops, 'processing'), or None when it is not live (see ``get_task`` for why)."""
    async with connection_errors(), pool.acquire() as conn, conn.transaction():
        status: str | None = await conn.fetchval(sql("cancel_queue_item"), item_id, user_id)
        if status == "processing":
            await conn.execute(sql("notify_cancel"), str(item_id))
    return status


async def watch(pool: Pool, user_id: uuid.UUID, watcher: uuid.UUID, seconds: float) -> None:
    """Register (or refresh) an open stream of the user's items for ``seconds``: their changes
    are announced (NOTIFY) only while someone watches."""
    async with connection_errors():
        await pool.execute(sql("watch_queue_items"), user_id, watcher, seconds)


async def unwatch(pool: Pool, user_id: uuid.UUID, watcher: uuid.UUID) -> None:
    """The stream closed."""
    async with connection_errors():
        await pool.execute(sql("unwatch_queue_items"), user_id, watcher)


# --- worker side ---


async def claim(
    pool: Pool,
    owner: str,
    limit: int,
    *,
    lease_seconds: float,
    first_steps: Mapping[str, str],
    running: int = 0,
) -> list[ClaimedItem]:
    """Claim up to ``limit`` due items for ``owner`` (fair across users, FIFO per user);
    ``first_steps`` names each job kind's first unit (the item's ``current_step`` at first).
    ``running``: the owner's jobs now. A due suspect is claimed alone, by an owner running
    nothing; once one waited ``lease_seconds`` a busy owner gets nothing (its jobs drain
    first)."""
    async with connection_errors():
        rows = await pool.fetch(
            sql("claim_queue_items"), owner, limit, lease_seconds, dict(first_steps), running
        )
    return [ClaimedItem(**dict(row)) for row in rows]


async def renew_leases(
    pool: Pool, owner: str, fences: Sequence[Fence], lease_seconds: float
) -> dict[tuple[uuid.UUID, int], bool]:
    """Renew every lease in one statement; (item id, claim) → cancel requested, for those still
    owned."""
    async with connection_errors():
        rows = await pool.fetch(
            sql("renew_leases"),
            owner,
            [fence.id for fence in fences],
            [fence.claim for fence in fences],
            lease_seconds,
        )
    return {(row["id"], row["claims"]): row["cancel_requested"] for row in rows}


@dataclass(frozen=True, slots=True)
class StepDone:
    """A finished step, for the step log: name, seconds, of those the pacing wait, and when it
    finished (epoch seconds; by default when this is made)."""

    name: str
    seconds: float
    wait_seconds: float
    at: float = field(default_factory=time.time)


async def save_checkpoint(
    pool: Pool,
    fence: Fence,
    checkpoint: dict[str, Any],
    step_timings: dict[str, float],
    next_step: str,
    steps: Sequence[StepDone],
) -> bool | None:
    """Save the output after a step (``steps``: those finished since the last write); None when
    the lease was lost, else whether cancel was requested."""
    async with connection_errors():
        row = await pool.fetchrow(
            sql("save_checkpoint"),
            *_fenced(fence),
            storable(checkpoint),
            step_timings,
            next_step,
            _step_log(steps),
        )
    return None if row is None else bool(row["cancel_requested"])


async def complete(
    pool: Pool,
    fence: Fence,
    step_timings: dict[str, float],
    steps: Sequence[StepDone],
    write_result: Callable[[Connection], Awaitable[None]],
) -> bool:
    """Complete the item (``steps``: those finished since the last write, for the step log) and,
    in the same transaction, let ``write_result`` write the job's result on the transaction's
    connection; False when fenced out or cancelled (then nothing
    was written). An exception from ``write_result`` rolls everything back and propagates."""
    async with connection_errors(), pool.acquire() as conn, conn.transaction():
        completed = await conn.fetchval(
            sql("complete_queue_item"), *_fenced(fence), step_timings, _step_log(steps)
        )
        if completed is None:
            return False
        await write_result(conn)
    return True


async def retry_later(
    pool: Pool,
    fence: Fence,
    delay_seconds: float,
    error: str | None,
    step: str | None,
    *,
    charge: bool,
    reason: str,
    max_age_seconds: float,
    kind: str = "retry",
    waiting_for: str | None = None,
) -> str | None:
    """Back to pending after ``delay_seconds``, charging an attempt or not; an uncharged item
    older than ``max_age_seconds`` fails instead. The new status ("still waiting": pending in
    the same wait as before, not recorded again), or None when fenced out."""
    async with connection_errors():
        status: str | None = await pool.fetchval(
            sql("retry_queue_item"),
            *_fenced(fence),
            delay_seconds,
            None if error is None else storable(error),
            step,
            int(charge),
            reason,
            max_age_seconds,
            kind,
            waiting_for,
        )
    return status


async def wake_provider_waiters(pool: Pool, provider: str) -> int:
    """Make the items waiting for ``provider`` (or an account of it) due now and wake the
    consumers; how many."""
    async with connection_errors(), pool.acquire() as conn, conn.transaction():
        status = await conn.execute(sql("wake_provider_waiters"), provider)
        woken = int(status.split()[-1])
        if woken:
            await conn.execute(sql("notify_queue"))
    return woken


async def fail(pool: Pool, fence: Fence, error: str, step: str | None, reason: str) -> bool:
    """Failed for good (the item's own failure); False when fenced out."""
    return await _fenced_write("fail_queue_item", pool, fence, storable(error), step, reason)


async def mark_cancelled(pool: Pool, fence: Fence) -> bool:
    """Acknowledge a cancel request; False when fenced out."""
    return await _fenced_write("cancel_running_queue_item", pool, fence)


async def release(pool: Pool, fence: Fence) -> bool:
    """Give an item back without charging its attempt; False when fenced out."""
    return await _fenced_write("release_queue_item", pool, fence)


async def notify_consumers(pool: Pool) -> None:
    """Wake every LISTENing consumer (after releasing items at shutdown)."""
    async with connection_errors():
        await pool.execute(sql("notify_queue"))


async def seconds_until_next_due(
    pool: Pool, *, idle: bool = True, suspect_wait: float = 0.0
) -> float | None:
    """Seconds until the earliest pending item the owner may claim is due (<= 0: due now; a
    suspect only when ``idle``); None when none waits, or when the owner is not ``idle`` and a
    suspect waited more than ``suspect_wait`` seconds (it claims nothing until its jobs end)."""
    async with connection_errors():
        value = await pool.fetchval(sql("seconds_until_next_due"), idle, suspect_wait)
    return None if value is None else float(value)


async def reap_expired(
    pool: Pool,
    *,
    limit: int,
    backoff: Sequence[float],
    max_crashes: int,
    max_age_seconds: float,
) -> dict[str, int]:
    """Return expired leases to pending (or failed/cancelled) without charging an attempt, due
    after ``backoff[n - 1]`` seconds on the item's n-th lost worker (the last entry beyond);
    count per resulting status."""
    async with connection_errors():
        rows = await pool.fetch(
            sql("reap_expired_leases"),
            limit,
            list(backoff),
            max_crashes,
            max_age_seconds,
        )
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


async def prune_finished(pool: Pool, *, older_than_seconds: float, limit: int) -> int:
    """Delete up to ``limit`` finished items older than the retention age, then the batches
    (stored templates) left without items and the template analyses as old; how many items."""
    async with connection_errors():
        status = await pool.execute(sql("prune_finished_queue_items"), older_than_seconds, limit)
        await pool.execute(sql("prune_orphan_queue_batches"), older_than_seconds, limit)
        await pool.execute(sql("prune_template_analyses"), older_than_seconds, limit)
    return int(status.split()[-1])


OPERATOR_VIEWS = (
    "queue_overview",
    "queue_active",
    "queue_failures",
    "queue_workers",
    "queue_step_durations",
    "queue_transient_errors",
    "queue_providers",
)


async def operator_view(pool: Pool, name: str) -> list[dict[str, Any]]:
    """Rows of one operator view (``OPERATOR_VIEWS``)."""
    if name not in OPERATOR_VIEWS:
        raise ValueError(f"unknown view {name!r}")
    async with connection_errors():
        rows = await pool.fetch(sql(name))
    return [dict(row) for row in rows]


async def requeue_failed(
    pool: Pool,
    *,
    ids: Sequence[uuid.UUID] | None,
    user_id: uuid.UUID | None,
    failed_since: datetime | None,
    step: str | None,
    limit: int,
    requested_by: str,
) -> list[uuid.UUID]:
    """Put failed items matching every given filter back to pending, in one transaction, and
    wake the consumers; the ids re-queued. Their history (events, checkpoint) is kept."""
    async with connection_errors(), pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            sql("requeue_failed_items"),
            None if ids is None else list(ids),
            user_id,
            failed_since,
            step,
            limit,
            requested_by,
        )
        if rows:
            await conn.execute(sql("notify_queue"))
    return [row["id"] for row in rows]


def _fenced(fence: Fence) -> tuple[uuid.UUID, str, int]:
    return fence.id, fence.owner, fence.claim


def _step_log(steps: Sequence[StepDone]) -> list[list[str | float]]:
    """Step log entries (queue_step_entry in the migrations reads them back)."""
    return [[step.name, step.seconds, step.wait_seconds, step.at] for step in steps]


async def _fenced_write(query: str, pool: Pool, fence: Fence, *args: object) -> bool:
    async with connection_errors():
        row = await pool.fetchrow(sql(query), *_fenced(fence), *args)
    return row is not None
