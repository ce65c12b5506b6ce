"""Poison items among healthy ones: does a healthy item ever pay for its neighbour's crash?

Real worker processes (``python -m tests.queue_worker``, the test steps: a poison item's
web_scraper kills its process with os._exit) against a fresh database; a process that dies is
started again at once. Per SCRIBE_MAX_CRASHES given, prints what became of the poison and of the
healthy items: failed, completed (emails, once each), the most times a healthy item lost its
worker, the most crashes blamed on one, worker deaths, and the time.

Usage: python bench/poison.py [items] [poison] [max_crashes ...]   (default 600 5 10 3)
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _support import REPO, bench_database, open_pool

from scribe.db.pool import Pool
from tests.fakes.steps import CRASH_EXIT_CODE, behaviour
from tests.queue_support import create_user, enqueue

WORKERS = 2
CONCURRENCY = 8
DEADLINE_SECONDS = 600.0


def _worker(dsn: str, logs: Path, max_crashes: int) -> subprocess.Popen[bytes]:
    options = ["--lease", "0.5", "--reaper", "0.1", "--concurrency", str(CONCURRENCY)]
    with (logs / f"worker-{time.monotonic_ns()}.err").open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.queue_worker", "--dsn", dsn, "--log-dir", str(logs),
             "--data-dir", str(logs / "data"), "--max-crashes", str(max_crashes), *options],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )  # fmt: skip


async def _seed(pool: Pool, items: int, poison: int) -> str:
    """``items`` over 3 users, ``poison`` of them spread evenly; the poison interest."""
    bad = behaviour(crash=["web_scraper"])
    good = behaviour(delay={"web_scraper": 0.02})
    every = max(1, items // poison)
    spots = {every * n + every // 2 for n in range(poison)}
    interests = [bad if n in spots else good for n in range(items)]
    per_user = -(-items // 3)
    for start in range(0, items, per_user):
        await enqueue(pool, await create_user(pool), interests[start : start + per_user])
    return bad


async def _settled(pool: Pool) -> bool:
    live = await pool.fetchval(
        "SELECT count(*) FROM queue_items WHERE status IN ('pending', 'processing')"
    )
    return bool(live == 0)


async def run(items: int, poison: int, max_crashes: int) -> str:
    async with bench_database() as dsn:
        pool = await open_pool(dsn)
        logs = Path(tempfile.mkdtemp(prefix="scribe-poison-"))
        try:
            bad = await _seed(pool, items, poison)
            started = time.perf_counter()
            workers = [_worker(dsn, logs, max_crashes) for _ in range(WORKERS)]
            deaths = 0
            try:
                while not await _settled(pool):
                    if time.perf_counter() - started > DEADLINE_SECONDS:
                        raise SystemExit("the queue did not settle in time")
                    for index, worker in enumerate(workers):
                        if worker.poll() is not None:
                            assert worker.returncode == CRASH_EXIT_CODE, worker.returncode
                            deaths += 1
                            workers[index] = _worker(dsn, logs, max_crashes)
                    await asyncio.sleep(0.05)
            finally:
                for worker in workers:
                    worker.kill()
                    worker.wait()
            seconds = time.perf_counter() - started
            row = await pool.fetchrow(
                """
                SELECT count(*) FILTER (WHERE recipient_interest = $1 AND status = 'failed')
                           AS poison_failed,
                       count(*) FILTER (WHERE recipient_interest <> $1 AND status = 'failed')
                           AS healthy_failed,
                       count(*) FILTER (WHERE recipient_interest <> $1 AND status = 'completed')
                           AS healthy_completed,
                       max(crashes) FILTER (WHERE recipient_interest <> $1) AS healthy_lost,
                       -- (read through to_jsonb: the column is absent before migration 0012)
                       max((to_jsonb(q) ->> 'blamed_crashes')::int)
                           FILTER (WHERE recipient_interest <> $1) AS healthy_blamed,
                       (SELECT count(*) FROM emails) AS emails,
                       (SELECT count(DISTINCT queue_item_id) FROM emails) AS emailed_items
                FROM queue_items q
                """,
                bad,
            )
            assert row is not None
        finally:
            await pool.close()
    healthy = items - poison
    return (
        f"{poison} poison among {items}, SCRIBE_MAX_CRASHES={max_crashes}:"
        f" poison failed {row['poison_failed']}/{poison};"
        f" healthy completed {row['healthy_completed']}/{healthy},"
        f" failed {row['healthy_failed']};"
        f" emails {row['emails']} for {row['emailed_items']} items;"
        f" a healthy item lost its worker at most {row['healthy_lost']} times,"
        f" blamed {row['healthy_blamed']};"
        f" worker deaths {deaths}; {seconds:.1f} s"
    )


async def main() -> None:
    args = [int(arg) for arg in sys.argv[1:]]
    items, poison = (args[:2] + [600, 5][len(args[:2]) :])[:2]
    for max_crashes in args[2:] or [10, 3]:
        print(await run(items, poison, max_crashes))


if __name__ == "__main__":
    asyncio.run(main())
