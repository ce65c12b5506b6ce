"""Leases: one batched heartbeat per process renews every running item's lease and brings back
the cancel requests in the same round trip."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping

from scribe.db import queue_items
from scribe.db.pool import Pool
from scribe.errors import DatabaseUnavailable
from scribe.queue.job import Job, StopReason
from scribe.queue.outage import QueueOutage


async def renew_once(
    pool: Pool,
    owner: str,
    jobs: Mapping[tuple[uuid.UUID, int], Job],
    lease_seconds: float,
    outage: QueueOutage | None = None,
) -> None:
    """Renew the leases of the running ``jobs``; stop those lost or cancelled. A database
    outage (``outage`` logs it once) only skips this beat."""
    outage = outage or QueueOutage()
    live = [job for job in jobs.values() if job.task is not None and not job.task.done()]
    if not live:
        return
    try:
        owned = await queue_items.renew_leases(
            pool, owner, [job.fence for job in live], lease_seconds
        )
    except DatabaseUnavailable as exc:
        # The leases may lapse meanwhile; fenced writes keep that safe. Try again next beat.
        outage.failed("lease renewal", exc)
        return
    outage.succeeded("lease renewal")
    for job in live:
        if job.fence.key not in owned:
            job.request_stop(StopReason.LEASE_LOST)
        elif owned[job.fence.key]:
            job.request_stop(StopReason.CANCELLED)


async def keep_leases(
    pool: Pool,
    owner: str,
    jobs: Mapping[tuple[uuid.UUID, int], Job],
    lease_seconds: float,
    outage: QueueOutage,
) -> None:
    """Heartbeat every TTL/4 until cancelled."""
    while True:
        await asyncio.sleep(lease_seconds / 4)
        await renew_once(pool, owner, jobs, lease_seconds, outage)
