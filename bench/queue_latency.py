"""Enqueue -> start latency (server timestamps: started_at - created_at), with LISTEN and
poll-only. A worker process waits idle; items are enqueued one by one, spaced out, so each one
needs its own wake-up. Target: p99 <= 50 ms with LISTEN on loopback."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

from _support import bench_database, open_pool, percentile, run_worker_main, spawn

from scribe.db import queue_items, users
from scribe.db.queue_items import NewItem

ITEMS = 200
POLL_ONLY_ITEMS = 50
SPACING_SECONDS = 0.02
POLL_SECONDS = 2.0


async def measure(listen: bool) -> list[float]:
    async with bench_database() as dsn:
        pool = await open_pool(dsn)
        worker = spawn("queue_latency.py", dsn, drain=False, listen=listen, poll=POLL_SECONDS)
        try:
            user_id = uuid.uuid4()
            await users.create(pool, user_id, "latency@bench.example", None)
            await asyncio.sleep(3)  # let the worker start and go idle
            count = ITEMS if listen else POLL_ONLY_ITEMS
            for _ in range(count):
                await queue_items.enqueue(
                    pool, user_id, [NewItem("Bench", "latency")], "Dear", max_attempts=3
                )
                await asyncio.sleep(SPACING_SECONDS if listen else POLL_SECONDS / 10)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                done = await pool.fetchval(
                    "SELECT count(*) FROM queue_items WHERE started_at IS NOT NULL"
                )
                if done == count:
                    break
                await asyncio.sleep(0.1)
            rows = await pool.fetch(
                "SELECT extract(epoch FROM started_at - created_at) * 1000 AS ms FROM queue_items"
                " WHERE started_at IS NOT NULL"
            )
            return [float(row["ms"]) for row in rows]
        finally:
            worker.terminate()
            worker.wait()
            await pool.close()


async def main() -> None:
    for listen in (True, False):
        latencies = await measure(listen)
        mode = "LISTEN/NOTIFY" if listen else f"poll-only ({POLL_SECONDS:.0f}s poll)"
        print(
            f"enqueue->start latency, {mode}: n={len(latencies)} "
            f"p50={percentile(latencies, 0.5):.1f} ms  p99={percentile(latencies, 0.99):.1f} ms  "
            f"max={max(latencies):.1f} ms"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        run_worker_main("queue_latency.py")
    else:
        asyncio.run(main())
