"""Time of each admin report (GET /api/admin/*) over a large history.

Seeds a throw-away database (embedded PostgreSQL, or DATABASE_URL's server) with N emails and N
queue items (1 % failed) spread over U users and 12 weeks, then runs each report's repository
call R times and prints the median and the slowest run (SQL, transfer and decoding; the HTTP
layer on top is a JSON dump of the rows).

    .venv/bin/python bench/admin_reports.py [--rows 100000] [--users 200] [--runs 20] [--vacuum]

--vacuum runs VACUUM after seeding, as autovacuum does to a table in use: the per-user counts of
the user list are index-only scans, which read the table only for pages not yet marked
all-visible (all of them right after a bulk insert).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from _support import bench_database, open_pool

from scribe.db import reports, templates, users
from scribe.db.pool import Pool
from scribe.settings import Settings

# What the admin page reads without a limit: the users and errors lists at their default length.
LIST_LIMIT = Settings.model_fields["scribe_admin_list_limit"].default


async def seed(pool: Pool, rows: int, user_count: int, vacuum: bool) -> list[uuid.UUID]:
    """Users, then ``rows`` emails and ``rows`` queue items spread over them and 12 weeks."""
    owners = []
    for n in range(user_count):
        user_id = uuid.uuid4()
        await users.create(pool, user_id, f"user{n}@bench.example", f"User {n}")
        owners.append(user_id)
    spacing = timedelta(weeks=12) / rows
    await pool.execute(
        """
        INSERT INTO emails (id, user_id, recipient_name, recipient_interest, email_message,
                            template_type, is_confident, metadata, created_at)
        SELECT gen_random_uuid(), ($1::uuid[])[1 + n % cardinality($1::uuid[])], 'Dr Example',
               'benchmarks', repeat('An email body. ', 40), 'research', n % 3 = 0,
               '{"model": "offline"}', now() - n * $3::interval
        FROM generate_series(1, $2::int) AS n
        """,
        owners,
        rows,
        spacing,
    )
    await pool.execute(
        """
        INSERT INTO queue_items (id, user_id, recipient_name, recipient_interest, batch_id,
                                 status, attempts, started_at, completed_at, created_at,
                                 failed_step, error_message)
        SELECT gen_random_uuid(), ($1::uuid[])[1 + n % cardinality($1::uuid[])], 'Dr Example',
               'benchmarks', gen_random_uuid(),
               CASE WHEN n % 100 = 0 THEN 'failed' ELSE 'completed' END, 1,
               now() - n * $3::interval - interval '20 seconds', now() - n * $3::interval,
               now() - n * $3::interval - interval '30 seconds',
               CASE WHEN n % 100 = 0 THEN 'web_scraper' END,
               CASE WHEN n % 100 = 0 THEN 'Search failed: HTTP 500' END
        FROM generate_series(1, $2::int) AS n
        """,
        owners,
        rows,
        spacing,
    )
    await pool.execute("VACUUM ANALYZE" if vacuum else "ANALYZE")
    return owners


async def timed(runs: int, call: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """Median and maximum milliseconds of ``runs`` calls (after one warm-up)."""
    await call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


async def main(rows: int, user_count: int, runs: int, vacuum: bool) -> None:
    async with bench_database() as dsn:
        pool = await open_pool(dsn)
        try:
            started = time.perf_counter()
            owners = await seed(pool, rows, user_count, vacuum)
            print(f"seeded {rows} emails + {rows} queue items over {user_count} users "
                  f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
            user = owners[0]
            cases: dict[str, Callable[[], Awaitable[Any]]] = {
                "overview": lambda: reports.overview(pool),
                "users (all)": lambda: reports.list_users(pool, limit=LIST_LIMIT),
                "user emails, page 1": lambda: reports.user_emails(pool, user, limit=20, offset=0),
                "user emails, last page": lambda: reports.user_emails(
                    pool, user, limit=20, offset=rows // user_count - 20
                ),
                "user templates": lambda: templates.list_for_user(pool, user),
                "user queue (500)": lambda: reports.user_queue(pool, user, limit=500),
                "activity (12 weeks)": lambda: reports.activity(pool, weeks=12),
                "errors (100)": lambda: reports.failed_items(pool, limit=100),
                "errors (all)": lambda: reports.failed_items(pool, limit=LIST_LIMIT),
            }
            print(f"{'report':<26}{'median ms':>10}{'max ms':>10}   ({runs} runs)")
            for name, call in cases.items():
                median, slowest = await timed(runs, call)
                print(f"{name:<26}{median:>10.1f}{slowest:>10.1f}")
        finally:
            await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--vacuum", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.users, args.runs, args.vacuum))
