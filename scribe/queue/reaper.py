"""The reaper every process runs: expired leases go back to pending (after the backoff of
scribe/queue/backoff.py, jittered once per round) without charging an attempt, or to failed when
the item lost its worker SCRIBE_MAX_CRASHES times while running alone (a poison item: one lost
beside others only becomes a suspect, claimed again alone, so a healthy item is never blamed for
its neighbour's crash) or outlived SCRIBE_MAX_ITEM_AGE_SECONDS; finished items past the
retention age are pruned in small batches (their events go with them). Concurrent reapers are
safe: both statements lock with SKIP LOCKED."""

from __future__ import annotations

import asyncio
import logging

from scribe.db import queue_items
from scribe.db.pool import Pool
from scribe.errors import DatabaseUnavailable
from scribe.queue.backoff import Backoff
from scribe.queue.outage import QueueOutage
from scribe.settings import Settings

log = logging.getLogger(__name__)

REAP_BATCH = 100
PRUNE_BATCH = 500
PRUNE_BATCHES_PER_ROUND = 20  # at most 10 000 rows a round, so a backlog never hogs the database


async def reap_once(pool: Pool, settings: Settings, *, judge_leases: bool = True) -> dict[str, int]:
    """One reaper round (without ``judge_leases``, pruning only); counts of reaped items by
    new status plus 'pruned'."""
    counts: dict[str, int] = {}
    if judge_leases:
        counts = await queue_items.reap_expired(
            pool,
            limit=REAP_BATCH,
            backoff=Backoff.from_settings(settings).schedule(settings.scribe_max_crashes),
            max_crashes=settings.scribe_max_crashes,
            max_age_seconds=settings.scribe_max_item_age_seconds,
        )
    if counts:
        log.warning("reaped items whose worker went away: %s", counts)
    pruned = 0
    for _ in range(PRUNE_BATCHES_PER_ROUND):
        deleted = await queue_items.prune_finished(
            pool,
            older_than_seconds=settings.scribe_retention_days * 86400,
            limit=PRUNE_BATCH,
        )
        pruned += deleted
        if deleted < PRUNE_BATCH:
            break
    if pruned:
        log.info("pruned %d finished queue items", pruned)
        counts["pruned"] = pruned
    return counts


async def reap_forever(pool: Pool, settings: Settings, outage: QueueOutage) -> None:
    """A reaper round now and every SCRIBE_REAPER_SECONDS until cancelled.

    Leases that lapsed while the database refused the owners' heartbeats (an outage, a full
    disk) are not lost workers: for one lease after this process last saw the database fail,
    rounds only prune, so the owners renew and finish their items instead of having them
    reaped."""
    while True:
        try:
            settled = outage.settled(settings.scribe_lease_seconds)
            await reap_once(pool, settings, judge_leases=settled)
        except DatabaseUnavailable as exc:
            outage.failed("reaper round", exc)
        else:
            outage.succeeded("reaper round")
        await asyncio.sleep(settings.scribe_reaper_seconds)
