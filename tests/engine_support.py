"""A small job handler that is not the email pipeline, and helpers to run it through the queue
engine's runner against the real database (tests/integration/test_queue_engine*.py)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from scribe.db import queue_items
from scribe.db.pool import Connection, Pool
from scribe.db.providers import ProviderTables
from scribe.db.queue_items import ClaimedItem
from scribe.providers.account import Breaker
from scribe.providers.accounts import Accounts
from scribe.queue.backoff import Backoff
from scribe.queue.handler import Progress, Unit
from scribe.queue.job import Job, Outcome
from scribe.queue.runner import JobRunner, RunnerConfig
from scribe.queue.waiting import StepTimer
from tests.queue_support import enqueue, item_rows

KIND = "test-job"
OWNER = "engine-test"
UNITS = ("a", "b", "c")
FOREVER = 3600.0
SEED = 1
NO_BACKOFF = Backoff(base=0.0, cap=0.0)  # a retried item is due again at once

Action = Callable[[], Awaitable[None]]


class ScriptedHandler:
    """A job of three units whose state is the list of units run; what a unit does besides is
    scripted per test. Its result is a row of ``job_results``."""

    def __init__(self, providers: dict[str, str] | None = None) -> None:
        self.actions: dict[str, Action] = {}
        self.runs: list[str] = []
        self.refuse: Exception | None = None  # raised by complete() after writing its row
        self.not_worth_saving: set[str] = set()  # no checkpoint after these units
        self._providers = providers or {}

    def units(self) -> Sequence[Unit]:
        return [Unit(name, self._providers.get(name)) for name in UNITS]

    def resume(self, item: ClaimedItem) -> tuple[list[str], Progress]:
        doc = item.checkpoint
        if not doc:
            return [], Progress()
        return list(doc["ran"]), Progress(list(doc["completed"]), dict(doc["timings"]))

    async def run_unit(self, unit: Unit, state: list[str], timer: StepTimer) -> list[str]:
        self.runs.append(unit.name)
        action = self.actions.get(unit.name)
        if action is not None:
            await action()
        return [*state, unit.name]

    def checkpoint(self, state: list[str], progress: Progress) -> dict[str, Any] | None:
        if progress.completed[-1] in self.not_worth_saving:
            return None
        return {"ran": state, "completed": progress.completed, "timings": progress.timings}

    async def complete(
        self, conn: Connection, item: ClaimedItem, state: list[str], progress: Progress
    ) -> None:
        await conn.execute(
            "INSERT INTO job_results (item_id, ran, timed) VALUES ($1, $2, $3)",
            item.id,
            state,
            sorted(progress.timings),
        )
        if self.refuse is not None:
            raise self.refuse


def raising(exc: Exception) -> Action:
    async def action() -> None:
        raise exc

    return action


async def hang() -> None:
    await asyncio.sleep(FOREVER)


async def create_results_table(pool: Pool) -> None:
    """The table ScriptedHandler writes its results into."""
    await pool.execute(
        "CREATE TABLE job_results (item_id uuid PRIMARY KEY, ran text[] NOT NULL, "
        "timed text[] NOT NULL)"
    )


async def add_item(pool: Pool, user: uuid.UUID, *, max_attempts: int = 3) -> uuid.UUID:
    [item] = await enqueue(pool, user, ["x"], max_attempts=max_attempts)
    await pool.execute("UPDATE queue_items SET kind = $2 WHERE id = $1", item, KIND)
    return item


async def claim(pool: Pool) -> Job:
    [item] = await queue_items.claim(pool, OWNER, 1, lease_seconds=60, first_steps={KIND: "a"})
    return Job(item, item.fence(OWNER))


def runner(
    pool: Pool,
    handler: ScriptedHandler,
    *,
    step_timeout: float = FOREVER,
    job_timeout: float = FOREVER,
    lease_seconds: float = 60.0,
    providers: Accounts | None = None,
    backoff: Backoff = NO_BACKOFF,
) -> JobRunner:
    """A runner for ``handler`` with a seeded jitter (``SEED``)."""
    config = RunnerConfig(
        step_timeout=step_timeout,
        job_timeout=job_timeout,
        lease_seconds=lease_seconds,
        backoff=backoff,
        max_age_seconds=86400.0,
    )
    providers = providers or accounts(pool)
    return JobRunner(
        pool, {KIND: handler}, config, random.Random(SEED), providers=providers, owner=OWNER
    )


def accounts(pool: Pool, probe_seconds: float = 60.0) -> Accounts:
    """Provider accounts whose breaker opens at the first fault and probes every
    ``probe_seconds``, sharing their state through ``pool``."""
    breaker = Breaker(threshold=1, probe_seconds=probe_seconds, probe_max_seconds=probe_seconds)
    return Accounts(breaker=breaker, store=ProviderTables(pool), owner=OWNER)


async def run_once(pool: Pool, handler: ScriptedHandler, **options: Any) -> Outcome:
    return await runner(pool, handler, **options).run(await claim(pool))


async def row(pool: Pool, item: uuid.UUID) -> Any:
    return (await item_rows(pool, [item]))[item]


async def due_in(pool: Pool, item: uuid.UUID) -> float:
    """Seconds from the item's last write to when it is due again."""
    query = "SELECT EXTRACT(EPOCH FROM run_after - updated_at) FROM queue_items WHERE id = $1"
    return float(await pool.fetchval(query, item))


async def fail_reason(pool: Pool, item: uuid.UUID) -> str | None:
    query = "SELECT reason FROM queue_item_history WHERE item_id = $1 AND kind = 'fail'"
    reason: str | None = await pool.fetchval(query, item)
    return reason


async def results(pool: Pool) -> list[Any]:
    return list(await pool.fetch("SELECT * FROM job_results"))
