"""What a provider outage costs the queue's history: rows and log lines per waiting item.

One consumer (SCRIBE_CONCURRENCY slots, the default breaker settings) runs ``--items`` items of
the deterministic test pipeline whose composer needs ``anthropic``; that provider answers 529
("overloaded") from the start for ``--outage`` seconds, then recovers. Every item reaches the
composer and waits for the provider, uncharged. Printed: the history rows (queue_item_events
ending a claim: release/retry) and the queue runner's log lines written during the outage, per
waiting item and scaled to per waiting item per hour, and whether every item completed after.

Before the provider accounts kept a parked item parked, waiting items were claimed and released
about every 30 s (one history row and one log line each time): 100 items in a 15-minute outage
wrote 2,954 rows, ~118 per waiting item per hour.

    DATABASE_URL=postgresql://... .venv/bin/python bench/provider_outage.py [--items 100]
        [--outage 120]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import bench_database

from scribe.db import queue_items, users
from scribe.db.pool import Pool, create_pool
from scribe.db.queue_items import NewItem
from scribe.emails.handler import email_handlers
from scribe.queue.consumer import Consumer
from scribe.settings import Settings
from tests.fakes.fixtures import GENERAL_TEMPLATE
from tests.fakes.steps import behaviour, deterministic_pipeline

COMPOSER_NEEDS_ANTHROPIC = {"email_composer": "anthropic"}
ENDS = "SELECT count(*) FROM queue_item_events WHERE kind IN ('release', 'retry')"


class Lines(logging.Handler):
    """Counts the queue runner's log lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def _consumer(pool: Pool, settings: Settings) -> Consumer:
    pipeline = deterministic_pipeline(None, COMPOSER_NEEDS_ANTHROPIC)
    handlers = email_handlers(pipeline, settings)
    try:
        from scribe.db.providers import ProviderTables
        from scribe.deps import provider_accounts
    except ImportError:  # a tree from before the provider accounts: the consumer makes its own
        return Consumer(pool, settings, handlers)
    providers = provider_accounts(settings, ProviderTables(pool))
    return Consumer(pool, settings, handlers, providers=providers)


async def run(items: int, outage: float) -> None:
    """Enqueue, run through the outage, count, recover, drain."""
    async with bench_database() as dsn:
        pool = await create_pool(dsn, size=4, transaction_pooler=False)
        with tempfile.TemporaryDirectory() as tmp:
            down = Path(tmp) / "down"
            down.touch()
            settings = Settings(
                _env_file=None,
                database_url=dsn,
                scribe_data_dir=Path(tmp) / "data",
                scribe_memory_budget_mb=0,
                log_level="WARNING",
            )
            user = await _user(pool)
            interest = behaviour(
                provider_down_while=str(down), provider_steps=COMPOSER_NEEDS_ANTHROPIC
            )
            await queue_items.enqueue(
                pool,
                user,
                [NewItem(f"Jane Roe{n}", interest) for n in range(items)],
                GENERAL_TEMPLATE,
                max_attempts=1,
            )
            lines = Lines()
            runner_log = logging.getLogger("scribe.queue.runner")
            runner_log.addHandler(lines)
            runner_log.setLevel(logging.INFO)
            consumer = _consumer(pool, settings)
            task = asyncio.create_task(consumer.run())
            started = time.monotonic()
            await asyncio.sleep(outage)
            rows, logged = await pool.fetchval(ENDS), lines.count
            down.unlink()  # the provider is back
            ended = time.monotonic()
            recovered = await _completed(pool, items, deadline=ended + 600)
            consumer.stop()
            await task
            took = time.monotonic() - ended
        await pool.close()
    hours = (ended - started) / 3600
    print(f"{items} items, provider down {outage:.0f}s (default breaker settings)")
    print(
        f"  during the outage: {rows} history rows, {logged} runner log lines; "
        f"{rows / items:.1f} rows and {logged / items:.1f} lines per waiting item; "
        f"{rows / items / hours:.1f} rows / waiting item / hour"
    )
    print(f"  after it: {recovered}/{items} completed within {took:.1f}s of the recovery")


async def _user(pool: Pool) -> uuid.UUID:
    user_id = uuid.uuid4()
    await users.create(pool, user_id, f"{user_id.hex[:8]}@uni.edu", None)
    return user_id


async def _completed(pool: Pool, items: int, *, deadline: float) -> int:
    query = "SELECT count(*) FROM queue_items WHERE status = 'completed'"
    done: int = await pool.fetchval(query)
    while done < items and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        done = await pool.fetchval(query)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--outage", type=float, default=120.0, help="seconds the provider is down")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.items, args.outage))


if __name__ == "__main__":
    main()
