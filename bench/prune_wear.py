"""What retention pruning writes to the emails it keeps: the emails table's size and the email
rows rewritten while the reaper prunes 20 000 finished items, with the plain item id column
(migration 0011) and, for comparison, with the foreign key it replaced (ON DELETE SET NULL).

Usage: python bench/prune_wear.py [items]   (DATABASE_URL's server, else a private embedded one)
"""

from __future__ import annotations

import asyncio
import sys
import time

from _support import bench_database, enqueue, open_pool

from scribe.db.pool import Pool
from scribe.queue import reaper
from scribe.settings import Settings

ITEMS = 20_000
MESSAGE = "Dear Professor, " + "I read your paper on queues with great interest. " * 30
MIB = 1024 * 1024
FOREIGN_KEY = (
    "ALTER TABLE emails ADD CONSTRAINT emails_queue_item_id_fkey FOREIGN KEY (queue_item_id)"
    " REFERENCES queue_items (id) ON DELETE SET NULL"
)


async def _fill(pool: Pool, items: int) -> None:
    """``items`` completed items finished 40 days ago, each with its email (~1.7 kB of text)."""
    await enqueue(pool, items, users_count=10)
    await pool.execute(
        "UPDATE queue_items SET status = 'completed', completed_at = now() - interval '40 days'"
    )
    await pool.execute(
        "INSERT INTO emails (id, user_id, queue_item_id, recipient_name, recipient_interest,"
        " email_message, template_type, metadata, is_confident)"
        " SELECT gen_random_uuid(), user_id, id, recipient_name, recipient_interest, $1,"
        " 'research', jsonb_build_object('model', 'bench', 'search_terms', '[]'::jsonb), true"
        " FROM queue_items",
        MESSAGE,
    )
    await pool.execute("VACUUM (ANALYZE) emails, queue_items")


async def _prune_all(pool: Pool) -> int:
    settings = Settings(_env_file=None, scribe_retention_days=30)
    pruned = 0
    while True:
        round_pruned = (await reaper.reap_once(pool, settings)).get("pruned", 0)
        if not round_pruned:
            return pruned
        pruned += round_pruned


async def measure(label: str, items: int, *, foreign_key: bool) -> str:
    """Prune ``items`` finished items in a fresh database; one line of figures."""
    async with bench_database() as dsn:
        pool = await open_pool(dsn)
        try:
            if foreign_key:
                await pool.execute(FOREIGN_KEY)
            await _fill(pool, items)
            size_before = await pool.fetchval("SELECT pg_total_relation_size('emails')")
            xid = await pool.fetchval("SELECT txid_current() % 4294967296")
            started = time.perf_counter()
            pruned = await _prune_all(pool)
            seconds = time.perf_counter() - started
            size_after = await pool.fetchval("SELECT pg_total_relation_size('emails')")
            rewritten = await pool.fetchval(
                "SELECT count(*) FROM emails WHERE xmin::text::bigint > $1", xid
            )
            emails = await pool.fetchval("SELECT count(*) FROM emails")
        finally:
            await pool.close()
    return (
        f"{label}: pruned {pruned} items in {seconds:.1f} s; emails table"
        f" {size_before / MIB:.1f} MiB -> {size_after / MIB:.1f} MiB,"
        f" {rewritten} of {emails} email rows rewritten"
    )


async def main() -> None:
    items = int(sys.argv[1]) if len(sys.argv) > 1 else ITEMS
    print(await measure("plain item id (0011)       ", items, foreign_key=False))
    print(await measure("foreign key, SET NULL (old)", items, foreign_key=True))


if __name__ == "__main__":
    asyncio.run(main())
