"""The job runner: drives a claimed item's units one by one through the handler of its kind.

Each unit is timed and bounded by the step and job timeouts; after each unit the handler's
checkpoint is saved (fenced), so a retry resumes after the last completed unit (a handler with
nothing worth saving after a unit says so, and the write is skipped); the end is one
fenced completion transaction inside which the handler writes its result. Units say "retry
later" or "failed" through exception types (``_unit_failed`` maps them); only this module turns
that into attempts and backoff. The runner knows nothing of what a job produces.

Whose fault (DESIGN §4): an attempt is charged only for what the item caused — a permanent error,
a step timeout on its own content, an unexpected exception. A provider fault (an
``UpstreamUnavailable`` naming the provider account) charges nothing; why and how long such an
item waits is ``scribe.queue.waiting``'s to say.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from scribe.db import queue_items
from scribe.db.pool import Connection, Pool
from scribe.db.queue_items import StepDone
from scribe.errors import (
    DatabaseUnavailable,
    PermanentStepError,
    TransientStepError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from scribe.process import tracing
from scribe.queue.backoff import Backoff, truncate_error
from scribe.queue.handler import Handler, Handlers, Progress, Unit
from scribe.queue.job import Job, Outcome, StopReason
from scribe.queue.outage import QueueOutage
from scribe.queue.waiting import Hold, NoProviders, ProviderGate, StepTimer
from scribe.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """Timeouts and retry policy of the runner."""

    step_timeout: float
    job_timeout: float
    lease_seconds: float
    backoff: Backoff
    max_age_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RunnerConfig:
        """The policy the settings describe."""
        return cls(
            step_timeout=settings.scribe_step_timeout_seconds,
            job_timeout=settings.scribe_job_timeout_seconds,
            lease_seconds=settings.scribe_lease_seconds,
            backoff=Backoff.from_settings(settings),
            max_age_seconds=settings.scribe_max_item_age_seconds,
        )


class _Stopped(Exception):
    """The running step was cancelled because the job was asked to stop."""


class _Lost(Exception):
    """A fenced write touched nothing, or the database stayed away past the lease."""


class JobRunner:
    """Runs one job at a time per call, with the handler of its kind; shared by all slots of a
    consumer."""

    def __init__(
        self,
        pool: Pool,
        handlers: Handlers,
        config: RunnerConfig,
        rng: random.Random | None = None,
        *,
        providers: ProviderGate | None = None,
        owner: str = "",
        outage: QueueOutage | None = None,
    ) -> None:
        self._pool = pool
        self._handlers = handlers
        self._config = config
        self._rng = rng or random.Random()
        self.providers = providers or NoProviders()
        self._owner = owner
        self._outage = outage or QueueOutage()

    async def run(self, job: Job) -> Outcome:
        """Run (or resume) the job to its end; never raises for step or database errors."""
        item = job.item
        try:
            with tracing.span(
                "queue job {item_id}", item_id=str(item.id), claim=job.fence.claim
            ) as span:
                handler = self._handlers.get(job.item.kind)
                if handler is None:
                    outcome = await self._fail(
                        job, None, f"No handler for job kind {job.item.kind!r}.", "unknown kind"
                    )
                else:
                    outcome = await self._run(job, handler)
                span.set_attribute("outcome", outcome.name)
                return outcome
        except _Lost:
            log.info("item %s: lease lost, stopping without writing", job.item.id)
            return Outcome.LOST

    async def _run(self, job: Job, handler: Handler[Any]) -> Outcome:
        if job.item.cancel_requested:
            job.request_stop(StopReason.CANCELLED)
        state, progress = handler.resume(job.item)
        units = handler.units()
        deadline = asyncio.get_running_loop().time() + self._config.job_timeout
        unsaved: list[StepDone] = []  # finished units not yet in the step log
        for index, unit in enumerate(units):
            if unit.name in progress.completed:
                continue
            if job.stop_reason is not None:
                return await self._stop(job)
            if (hold := self._admit(unit)) is not None:
                return await self._wait_for_provider(job, unit.name, hold)
            try:
                state, done = await self._run_unit(job, handler, unit, state, deadline)
            except _Stopped:
                return await self._stop(job)
            except Exception as exc:
                return await self._unit_failed(job, unit.name, exc)
            await self._succeeded(unit)
            progress.completed.append(unit.name)
            progress.timings[unit.name] = done.seconds
            unsaved.append(done)
            if index + 1 < len(units) and await self._checkpoint(
                job, handler.checkpoint(state, progress), progress, units[index + 1], unsaved
            ):
                unsaved = []
        if job.stop_reason is not None:
            return await self._stop(job)
        return await self._complete(job, handler, units, state, progress, unsaved)

    async def _run_unit(
        self, job: Job, handler: Handler[Any], unit: Unit, state: Any, deadline: float
    ) -> tuple[Any, StepDone]:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        job.in_step = True
        try:
            with tracing.span("step {step}", step=unit.name):
                async with asyncio.timeout_at(
                    min(loop.time() + self._config.step_timeout, deadline)
                ) as timeout:
                    # Waits for a provider account hold this timer (they are not the step's).
                    timer = StepTimer(timeout, deadline)
                    state = await handler.run_unit(unit, state, timer)
        except asyncio.CancelledError:
            if job.stop_reason is None:
                raise  # not ours: let the cancellation through
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            raise _Stopped from None
        except TimeoutError as exc:
            limit = "job" if loop.time() >= deadline else "step"
            raise TransientStepError(f"{unit.name} timed out ({limit} timeout)") from exc
        finally:
            job.in_step = False
        seconds = round(time.perf_counter() - started, 4)
        return state, StepDone(unit.name, seconds, round(timer.waited, 4))

    async def _unit_failed(self, job: Job, unit: str, exc: Exception) -> Outcome:
        """The one mapping from what a unit (or the handler's result write) raised to what
        happens to the item."""
        if isinstance(exc, PermanentStepError | UpstreamRejected):
            return await self._fail(job, unit, _describe(exc), "permanent")
        if isinstance(exc, UpstreamUnavailable):
            return await self._provider_fault(job, unit, exc, exc.provider)
        if isinstance(exc, TransientStepError):
            return await self._retry(job, unit, _describe(exc), exc.retry_after)
        # A bug or a library error the unit did not wrap: retry, and fail once attempts run out.
        log.error("item %s: step %s raised unexpectedly", job.item.id, unit, exc_info=exc)
        return await self._retry(job, unit, _describe(exc), None)

    async def _provider_fault(
        self, job: Job, step: str, exc: UpstreamUnavailable, provider: str
    ) -> Outcome:
        """Not the item's fault: no attempt; wait for the provider (longer once it is down)."""
        hold = await self.providers.failed(provider, _describe(exc))
        delay = self._config.backoff.delay(1, rng=self._rng)
        delay = max(delay, hold.seconds if hold else 0.0, exc.retry_after or 0.0)
        reason = f"{provider} unavailable"
        return await self._requeue(
            job, step, _describe(exc), delay, reason, kind="retry", waiting_for=provider
        )

    async def _wait_for_provider(self, job: Job, step: str, hold: Hold) -> Outcome:
        """The unit's account is closed: parked until its next probe or until it is back (no
        attempt either way)."""
        # Spread the returns a little so the items do not all come back in the same instant.
        delay = hold.seconds + self._rng.random() * min(1.0, hold.seconds)
        return await self._requeue(
            job,
            step,
            f"Waiting for {hold.reason}",
            delay,
            f"{hold.account} closed",
            kind="release",
            waiting_for=hold.account,
        )

    async def _requeue(
        self,
        job: Job,
        step: str,
        error: str,
        delay: float,
        reason: str,
        *,
        kind: str,
        waiting_for: str,
    ) -> Outcome:
        status = await self._write(
            job,
            "retry write",
            lambda: queue_items.retry_later(
                self._pool,
                job.fence,
                delay,
                truncate_error(error),
                step,
                charge=False,
                reason=reason,
                max_age_seconds=self._config.max_age_seconds,
                kind=kind,
                waiting_for=waiting_for,
            ),
        )
        if status is None:
            raise _Lost
        if status == "failed":
            log.info("item %s failed at %s: too old to keep waiting (%s)", job.item.id, step, error)
            return Outcome.FAILED
        # An unchanged wait (the same account, the same step) is neither recorded nor logged.
        level = logging.DEBUG if status == "still waiting" else logging.INFO
        log.log(
            level, "item %s: %s (%s); again in %.1fs, no attempt", job.item.id, reason, error, delay
        )
        return Outcome.RETRYING

    def _admit(self, unit: Unit) -> Hold | None:
        """None when the unit may start; else what its item waits for."""
        return None if unit.provider is None else self.providers.admit(unit.provider)

    async def _succeeded(self, unit: Unit) -> None:
        """The unit worked: when that brought its provider back, its parked items are due."""
        if unit.provider is None or not await self.providers.succeeded(unit.provider):
            return
        with contextlib.suppress(DatabaseUnavailable):  # they come back at their due time
            await queue_items.wake_provider_waiters(self._pool, unit.provider)

    async def _checkpoint(
        self,
        job: Job,
        checkpoint: dict[str, Any] | None,
        progress: Progress,
        next_unit: Unit,
        steps: Sequence[StepDone],
    ) -> bool:
        """Save the checkpoint and the ``steps`` since the last write; False when the handler
        had nothing worth saving (then nothing is written)."""
        if checkpoint is None:
            return False
        cancel_requested = await self._write(
            job,
            "checkpoint write",
            lambda: queue_items.save_checkpoint(
                self._pool, job.fence, checkpoint, progress.timings, next_unit.name, steps
            ),
        )
        if cancel_requested is None:
            raise _Lost
        if cancel_requested:
            job.request_stop(StopReason.CANCELLED)
        return True

    async def _complete(
        self,
        job: Job,
        handler: Handler[Any],
        units: Sequence[Unit],
        state: Any,
        progress: Progress,
        steps: Sequence[StepDone],
    ) -> Outcome:
        async def write_result(conn: Connection) -> None:
            await handler.complete(conn, job.item, state, progress)

        try:
            completed = await self._write(
                job,
                "completion write",
                lambda: queue_items.complete(
                    self._pool, job.fence, progress.timings, steps, write_result
                ),
            )
        except _Lost:
            raise
        except Exception as exc:  # the handler refused or failed to write its result
            return await self._unit_failed(job, units[-1].name, exc)
        if completed:
            return Outcome.COMPLETED
        # Nothing was written: either cancel was requested (then acknowledge it) or the lease
        # is gone (then the cancel write is fenced out too).
        return await self._stop_with(job, StopReason.CANCELLED)

    async def _stop(self, job: Job) -> Outcome:
        assert job.stop_reason is not None
        return await self._stop_with(job, job.stop_reason)

    async def _stop_with(self, job: Job, reason: StopReason) -> Outcome:
        if reason is StopReason.CANCELLED:
            if await self._write(
                job, "cancel write", lambda: queue_items.mark_cancelled(self._pool, job.fence)
            ):
                return Outcome.CANCELLED
        elif reason is StopReason.SHUTDOWN and await self._write(
            job, "release write", lambda: queue_items.release(self._pool, job.fence)
        ):
            return Outcome.RELEASED
        raise _Lost

    async def _retry(self, job: Job, step: str, error: str, retry_after: float | None) -> Outcome:
        """The item's own transient failure: charged against max_attempts."""
        attempt = job.item.attempts + 1
        if attempt >= job.item.max_attempts:
            return await self._fail(
                job, step, f"{error} (gave up after {attempt} attempts)", "attempts used up"
            )
        delay = self._config.backoff.delay(attempt, retry_after=retry_after, rng=self._rng)
        message = truncate_error(error)
        status = await self._write(
            job,
            "retry write",
            lambda: queue_items.retry_later(
                self._pool,
                job.fence,
                delay,
                message,
                step,
                charge=True,
                reason="item failure",
                max_age_seconds=self._config.max_age_seconds,
            ),
        )
        if status is None:
            raise _Lost
        log.info("item %s: %s failed (%s); retry in %.1fs", job.item.id, step, error, delay)
        return Outcome.RETRYING

    async def _fail(self, job: Job, step: str | None, error: str, reason: str) -> Outcome:
        message = truncate_error(error)
        if await self._write(
            job,
            "failure write",
            lambda: queue_items.fail(self._pool, job.fence, message, step, reason),
        ):
            log.info("item %s failed at %s: %s", job.item.id, step, error)
            return Outcome.FAILED
        raise _Lost

    async def _write(self, job: Job, kind: str, write: Callable[[], Awaitable[T]]) -> T:
        """Run a fenced write, retrying while the database is away or cannot store (a restart,
        a full disk): fencing makes a repeated write harmless, and the wait is never charged to
        the item (the outage is logged once, as ``kind``). The lease may lapse meanwhile, but
        whoever writes first once the database is back wins and the other is fenced out. Give
        up (the item is left to the reaper) when the heartbeat learns the lease is lost, when
        shutting down past the lease time, or after the job timeout (at least the lease)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        give_up_at = started + max(self._config.lease_seconds, self._config.job_timeout)
        delay = 0.1
        while True:
            try:
                result = await write()
            except DatabaseUnavailable as exc:
                self._outage.failed(kind, exc)
                due = loop.time() + delay
                shutting_down = job.stop_reason is StopReason.SHUTDOWN
                if (
                    job.stop_reason is StopReason.LEASE_LOST
                    or due > give_up_at
                    or (shutting_down and due > started + self._config.lease_seconds)
                ):
                    log.info("item %s: %s given up, the database still away", job.item.id, kind)
                    raise _Lost from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            else:
                self._outage.succeeded(kind)
                return result


def _describe(exc: BaseException) -> str:
    message = str(exc)
    return message if message else type(exc).__name__
