"""The consumer: claims due items into SCRIBE_CONCURRENCY asyncio slots and runs them.

It claims only as many items as it has free slots, wakes on NOTIFY (through the shared
``Listener``), on a freed slot and on a poll timer, and runs the heartbeat and the reaper beside
itself. ``run(drain=True)`` returns once nothing is due and nothing runs (tests use it instead of
sleeping). ``stop()`` stops claiming; running jobs then get the shutdown grace period, after
which they are released to pending without being charged an attempt (``release_now()`` skips
the wait).

A suspect item (its worker was lost while it ran beside others) runs alone: the claim gives it
only to an owner running nothing (busy owners drain for it once it waited a lease), and nothing
else is claimed until it ends, so if the process dies meanwhile the item is the likely cause and
the reaper blames it.

Running jobs are keyed by (item id, claim), the fence, never by item id alone: when this process
re-claims an item whose old job it is still running (the lease lapsed while the loop was busy),
the old job's end must not take the new one out of lease renewal or slot counting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from scribe.db import queue_items
from scribe.db.pool import Pool
from scribe.db.queue_items import ClaimedItem
from scribe.errors import ConsumerCrashed, DatabaseUnavailable
from scribe.queue.handler import Handlers
from scribe.queue.job import Job, Outcome, StopReason
from scribe.queue.lease import keep_leases
from scribe.queue.listener import CANCEL_CHANNEL, WAKE_CHANNEL, Listener
from scribe.queue.outage import QueueOutage
from scribe.queue.reaper import reap_forever
from scribe.queue.runner import JobRunner, RunnerConfig
from scribe.queue.waiting import ProviderGate
from scribe.settings import Settings

log = logging.getLogger(__name__)

# A due item another consumer holds locked is re-checked this often, not in a busy loop.
_MIN_WAIT_SECONDS = 0.05
# After a failed claim (database restarting), try again this soon rather than at the next poll.
_RETRY_CLAIM_SECONDS = 1.0
CLAIM_HOLD_SECONDS = 0.05  # how long a lone free slot waits for company under a backlog


def new_owner_id() -> str:
    """A process identity for ``locked_by``: host, pid and a nonce (new on every start)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Consumer:
    """Claims and runs queue items in this process, each with the handler of its kind."""

    def __init__(
        self,
        pool: Pool,
        settings: Settings,
        handlers: Handlers,
        *,
        listener: Listener | None = None,
        owner: str | None = None,
        providers: ProviderGate | None = None,
    ) -> None:
        if not handlers or not all(handler.units() for handler in handlers.values()):
            raise ValueError("no handlers, or a handler without units")
        self.owner = owner or new_owner_id()
        self.outcomes: Counter[Outcome] = Counter()
        self._pool = pool
        self._settings = settings
        # Each kind's first unit: an item shows it as its current step from its first claim.
        self._first_units = {kind: handler.units()[0].name for kind, handler in handlers.items()}
        self._listener = listener
        # The database's outages as this consumer's parts meet them, logged once.
        self.outage = QueueOutage()
        self._runner = JobRunner(
            pool,
            handlers,
            RunnerConfig.from_settings(settings),
            providers=providers,
            owner=self.owner,
            outage=self.outage,
        )
        self._jobs: dict[tuple[uuid.UUID, int], Job] = {}
        self._alone: tuple[uuid.UUID, int] | None = None  # a suspect's job: nothing runs beside it
        self._wake = asyncio.Event()
        self._stopping = False
        self._releasing = False
        self._crash: BaseException | None = None

    @property
    def running(self) -> int:
        """How many jobs are running now."""
        return len(self._jobs)

    def stop(self) -> None:
        """Stop claiming; running jobs get the grace period (SIGTERM, first time)."""
        self._stopping = True
        self._wake.set()

    def release_now(self) -> None:
        """Stop claiming and release running jobs without waiting (SIGTERM, second time)."""
        self._releasing = True
        self.stop()

    async def run(self, *, drain: bool = False) -> None:
        """Claim and run items until ``stop()`` (or, with ``drain``, until idle)."""
        unsubscribe = self._subscribe()
        try:
            async with self._background():
                try:
                    await self._claim_loop(drain)
                finally:
                    await self._finish_jobs()
        finally:
            unsubscribe()
        if self._crash is not None:
            raise ConsumerCrashed(f"consumer task failed: {self._crash!r}") from self._crash

    async def _claim_loop(self, drain: bool) -> None:
        concurrency = self._settings.scribe_concurrency
        # With a backlog (the last claim filled every free slot) hold a lone free slot for a
        # moment, so that one claim fills several: fewer statements per item. The moment is
        # short: when jobs run long, no other slot frees up in it and the slot claims alone
        # rather than idle until the next job ends. An idle queue claims at once, so a lone
        # new item never waits for company.
        batch = max(1, concurrency // 4)
        backlog = False
        held = False  # the last wait was a hold that ran out
        while not self._stopping:
            self._wake.clear()
            free = 0 if self._alone is not None else concurrency - len(self._jobs)
            hold = backlog and 0 < free < batch and not held
            wait = CLAIM_HOLD_SECONDS if hold else self._settings.scribe_poll_seconds
            if free > 0 and not hold:
                claimed = await self._claim(free)
                if claimed is None:  # database away: try again soon, not at the next poll
                    backlog, wait = False, min(wait, _RETRY_CLAIM_SECONDS)
                else:
                    backlog = claimed == free
                    if drain and claimed == 0 and not self._jobs:
                        return
                    if not backlog:
                        wait = await self._until_next_due(wait)
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
                held = False
            except TimeoutError:
                held = hold

    async def _until_next_due(self, poll: float) -> float:
        """How long to sleep when nothing more is due: until the earliest backed-off item is due
        (no NOTIFY marks that moment), at most ``poll``."""
        try:
            due_in = await queue_items.seconds_until_next_due(
                self._pool,
                idle=not self._jobs,
                suspect_wait=self._settings.scribe_lease_seconds,
            )
        except DatabaseUnavailable:
            return min(poll, _RETRY_CLAIM_SECONDS)
        if due_in is None:
            return poll
        return min(poll, max(due_in, _MIN_WAIT_SECONDS))

    async def _claim(self, free: int) -> int | None:
        """Claim and start up to ``free`` items; None when the database is unavailable."""
        try:
            items = await queue_items.claim(
                self._pool,
                self.owner,
                free,
                lease_seconds=self._settings.scribe_lease_seconds,
                first_steps=self._first_units,
                running=len(self._jobs),
            )
        except DatabaseUnavailable as exc:
            self.outage.failed("claim", exc)
            return None
        self.outage.succeeded("claim")
        for item in items:
            self._start(item)
        return len(items)

    def _start(self, item: ClaimedItem) -> None:
        job = Job(item, item.fence(self.owner))
        job.task = asyncio.create_task(
            self._runner.run(job), name=f"queue-job-{item.id}-{item.claims}"
        )
        self._jobs[job.fence.key] = job
        if item.suspect:  # claimed alone (claim_queue_items); run alone until it ends
            self._alone = job.fence.key
        job.task.add_done_callback(lambda task: self._job_done(job, task))

    def _job_done(self, job: Job, task: asyncio.Task[Outcome]) -> None:
        if self._jobs.get(job.fence.key) is job:
            del self._jobs[job.fence.key]
        if self._alone == job.fence.key:
            self._alone = None
        self._wake.set()
        if task.cancelled():
            log.error(
                "item %s: job task cancelled from outside; the reaper will retry it", job.item.id
            )
        elif (exc := task.exception()) is not None:
            log.error("item %s: job crashed; the reaper will retry it", job.item.id, exc_info=exc)
        else:
            self.outcomes[task.result()] += 1

    async def _finish_jobs(self) -> None:
        """Give running jobs the grace period, then release the rest to pending."""
        if self._jobs and not self._releasing:
            grace = self._settings.scribe_shutdown_grace_seconds
            log.info("waiting up to %.1fs for %d running job(s)", grace, len(self._jobs))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    while self._jobs and not self._releasing:
                        self._wake.clear()
                        await self._wake.wait()
        tasks = [job.task for job in self._jobs.values() if job.task is not None]
        for job in self._jobs.values():
            job.request_stop(StopReason.SHUTDOWN)
        if not tasks:
            return
        log.info("releasing %d running job(s) to pending", len(tasks))
        await asyncio.wait(tasks)
        with contextlib.suppress(DatabaseUnavailable):
            await queue_items.notify_consumers(self._pool)  # a peer may take them at once

    def _subscribe(self) -> Callable[[], None]:
        if self._listener is None:
            return lambda: None

        def on_cancel(payload: str | None) -> None:
            item_id = uuid.UUID(payload) if payload else None
            for job in list(self._jobs.values()):
                if job.item.id == item_id:
                    job.request_stop(StopReason.CANCELLED)

        def on_wake(payload: str | None) -> None:
            self._wake.set()

        undo_wake = self._listener.subscribe(WAKE_CHANNEL, on_wake)
        undo_cancel = self._listener.subscribe(CANCEL_CHANNEL, on_cancel)
        return lambda: (undo_wake(), undo_cancel())[-1]

    @contextlib.asynccontextmanager
    async def _background(self) -> AsyncIterator[None]:
        settings = self._settings
        tasks = [
            self._track(
                keep_leases(
                    self._pool, self.owner, self._jobs, settings.scribe_lease_seconds, self.outage
                ),
                "queue-heartbeat",
            ),
            self._track(reap_forever(self._pool, settings, self.outage), "queue-reaper"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _track(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=f"{name}-{self.owner}")

        def on_done(done: asyncio.Task[None]) -> None:
            if done.cancelled() or done.exception() is None:
                return
            # Without a heartbeat or reaper the consumer is unsafe: stop it, let run() raise.
            log.error("%s crashed; stopping the consumer", name, exc_info=done.exception())
            self._crash = done.exception()
            self.stop()

        task.add_done_callback(on_done)
        return task
