"""Real worker processes (``python -m tests.queue_worker``) against one database: crashes, stalls,
scale-out, signals and a database restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from scribe.db.pool import Pool
from scribe.errors import DatabaseUnavailable
from scribe.steps import STEP_NAMES
from tests import database
from tests.fakes.steps import CRASH_EXIT_CODE, StepLog, behaviour
from tests.queue_support import (
    create_user,
    email_count,
    enqueue,
    item_rows,
    spawn_worker,
    status_counts,
    wait_exit,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

LEASE = ("--lease", "1.0", "--reaper", "0.2")


@pytest.fixture
def step_log(tmp_path: Path) -> StepLog:
    (tmp_path / "steps").mkdir()
    return StepLog(tmp_path / "steps")


def _stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


async def _step_started(log: StepLog, item: uuid.UUID, step: str, pid: int) -> bool:
    return pid in log.pids(item, step)


async def _all_status(pool: Pool, status: str, total: int) -> bool:
    try:
        return (await status_counts(pool)).get(status, 0) == total
    except (OSError, DatabaseUnavailable, ConnectionError):
        return False


async def test_killed_worker_item_completes_once_resuming_from_checkpoint(
    pool: Pool, database_url: str, tmp_path: Path, step_log: StepLog
) -> None:
    user = await create_user(pool)
    [item] = await enqueue(pool, user, [behaviour(hang_once=["email_composer"])])
    first = spawn_worker(database_url, tmp_path, *LEASE)
    second = None
    try:
        await wait_until(
            lambda: _step_started(step_log, item, "email_composer", first.pid), timeout=30
        )
        first.kill()  # SIGKILL mid-job: no cleanup, the lease just expires
        await wait_exit(first, 10)
        second = spawn_worker(database_url, tmp_path, *LEASE)
        await wait_until(lambda: _all_status(pool, "completed", 1), timeout=30)
    finally:
        _stop(first, *([second] if second else []))

    row = (await item_rows(pool, [item]))[item]
    # The kill was not the item's fault: two claims, one lost worker, no attempt charged.
    assert (row["status"], row["claims"], row["crashes"], row["attempts"]) == (
        "completed",
        2,
        1,
        0,
    )
    assert await email_count(pool) == 1
    starts = step_log.starts(item)
    assert [starts[(str(item), step)] for step in STEP_NAMES] == [1, 1, 1, 2]
    assert second is not None
    # The log files are read in file-name (pid string) order, not time order: compare as sets.
    assert sorted(step_log.pids(item, "email_composer")) == sorted([first.pid, second.pid])


async def test_stopped_worker_past_its_lease_writes_nothing_after_a_peer_finished(
    pool: Pool, database_url: str, tmp_path: Path, step_log: StepLog
) -> None:
    user = await create_user(pool)
    [item] = await enqueue(pool, user, [behaviour(delay={"web_scraper": 1.5})])
    stale = spawn_worker(database_url, tmp_path, *LEASE)
    peer = None
    try:
        await wait_until(
            lambda: _step_started(step_log, item, "web_scraper", stale.pid), timeout=30
        )
        stale.send_signal(signal.SIGSTOP)
        peer = spawn_worker(database_url, tmp_path, *LEASE)
        await wait_until(lambda: _all_status(pool, "completed", 1), timeout=30)
        finished = (await item_rows(pool, [item]))[item]
        stale.send_signal(signal.SIGCONT)
        stale.send_signal(signal.SIGTERM)  # it finishes or releases its job, then exits
        assert await wait_exit(stale, 30) == 0
    finally:
        stale.send_signal(signal.SIGCONT)
        _stop(stale, *([peer] if peer else []))

    assert (await item_rows(pool, [item]))[item] == finished
    assert (finished["status"], finished["claims"], finished["attempts"]) == ("completed", 2, 0)
    assert await email_count(pool) == 1
    assert await pool.fetchval("SELECT generation_count FROM users WHERE id = $1", user) == 1


async def test_four_processes_complete_1000_items_each_exactly_once(
    pool: Pool, database_url: str, tmp_path: Path, step_log: StepLog
) -> None:
    ids = []
    for _ in range(10):
        ids += await enqueue(pool, await create_user(pool), ["plain"] * 100)
    workers = [
        spawn_worker(database_url, tmp_path, "--drain", "--concurrency", "8") for _ in range(4)
    ]
    try:
        for worker in workers:
            assert await wait_exit(worker, 120) == 0
    finally:
        _stop(*workers)

    rows = await item_rows(pool)
    assert len(rows) == 1000
    assert {(row["status"], row["claims"], row["attempts"]) for row in rows.values()} == {
        ("completed", 1, 0)
    }
    assert await pool.fetchval("SELECT count(DISTINCT queue_item_id) FROM emails") == 1000
    assert await email_count(pool) == 1000
    starts = step_log.starts()
    assert len(starts) == 4000 and set(starts.values()) == {1}


async def test_item_that_crashes_its_process_every_time_ends_failed(
    pool: Pool, database_url: str, tmp_path: Path, step_log: StepLog
) -> None:
    user = await create_user(pool)
    [item] = await enqueue(pool, user, [behaviour(crash=["web_scraper"])], max_attempts=3)
    crashes = 0
    options = ("--lease", "0.5", "--reaper", "0.1", "--max-crashes", "4")
    worker = spawn_worker(database_url, tmp_path, *options)
    try:
        while not await _all_status(pool, "failed", 1):
            if worker.poll() is not None:
                assert worker.returncode == CRASH_EXIT_CODE
                crashes += 1
                assert crashes <= 5, "crashed more often than SCRIBE_MAX_CRASHES lone runs"
                worker = spawn_worker(database_url, tmp_path, *options)
            await asyncio.sleep(0.05)
    finally:
        _stop(worker)

    row = (await item_rows(pool, [item]))[item]
    # Lost workers never use up attempts; the crash bound still ends a poison item, named so.
    # The first loss only makes it a suspect; the next four, each on a lone run, are its own.
    assert (row["status"], row["failed_step"]) == ("failed", "web_scraper")
    assert (row["attempts"], row["crashes"], row["blamed_crashes"]) == (0, 5, 4)
    assert "crashes its worker" in row["error_message"]
    assert crashes == 5
    assert step_log.starts(item)[(str(item), "web_scraper")] == 5
    assert await email_count(pool) == 0


async def test_poison_items_fail_alone_and_every_healthy_neighbour_completes_once(
    pool: Pool, database_url: str, tmp_path: Path
) -> None:
    poison = behaviour(crash=["web_scraper"])
    healthy = behaviour(delay={"web_scraper": 0.05})  # a few in flight beside each poison run
    ids: list[uuid.UUID] = []
    for n in range(3):
        interests = [healthy] * 50
        interests[10 + 15 * n] = poison
        ids += await enqueue(pool, await create_user(pool), interests)
    options = ("--lease", "0.5", "--reaper", "0.1", "--max-crashes", "3", "--concurrency", "8")
    workers = [spawn_worker(database_url, tmp_path, *options) for _ in range(2)]
    deaths = 0
    try:
        while not await _settled(pool, failed=3, completed=147):
            for index, worker in enumerate(workers):
                if worker.poll() is not None:
                    assert worker.returncode == CRASH_EXIT_CODE
                    deaths += 1
                    # Each poison item: one loss beside others, then 3 lone runs, at most.
                    assert deaths <= 3 * 4, "more worker deaths than the poison items explain"
                    workers[index] = spawn_worker(database_url, tmp_path, *options)
            await asyncio.sleep(0.05)
    finally:
        _stop(*workers)

    rows = await item_rows(pool, ids)
    failed = {key for key, row in rows.items() if row["status"] == "failed"}
    assert len(failed) == 3
    for key in failed:
        assert rows[key]["recipient_interest"] == poison
        assert rows[key]["blamed_crashes"] == 3
        assert "running alone: the item probably crashes its worker" in rows[key]["error_message"]
    others = [row for key, row in rows.items() if key not in failed]
    assert {(row["status"], row["blamed_crashes"], row["attempts"]) for row in others} == {
        ("completed", 0, 0)
    }
    assert any(row["crashes"] > 0 for row in others)  # some were lost beside a poison item
    assert await pool.fetchval("SELECT count(DISTINCT queue_item_id) FROM emails") == 147
    assert await email_count(pool) == 147


async def _settled(pool: Pool, *, failed: int, completed: int) -> bool:
    try:
        counts = await status_counts(pool)
    except (OSError, DatabaseUnavailable, ConnectionError):
        return False
    return counts.get("failed", 0) == failed and counts.get("completed", 0) == completed


async def test_sigterm_finishes_or_releases_running_items_and_a_peer_takes_them(
    pool: Pool, database_url: str, tmp_path: Path
) -> None:
    user = await create_user(pool)
    slow = behaviour(delay={name: 0.4 for name in STEP_NAMES})
    ids = await enqueue(pool, user, [slow] * 8)
    worker = spawn_worker(database_url, tmp_path, "--concurrency", "4", "--grace", "0.5")
    try:
        await wait_until(lambda: _all_status(pool, "processing", 4), timeout=30)
        worker.send_signal(signal.SIGTERM)
        assert await wait_exit(worker, 30) == 0
    finally:
        _stop(worker)

    after_stop = await item_rows(pool, ids)
    assert "processing" not in {row["status"] for row in after_stop.values()}
    released = [row for row in after_stop.values() if row["status"] == "pending"]
    assert len(released) == 8 - sum(row["status"] == "completed" for row in after_stop.values())
    assert all(row["attempts"] == 0 and row["locked_by"] is None for row in released)
    assert any(row["checkpoint"] is not None for row in released)  # work kept for the peer

    peer = spawn_worker(database_url, tmp_path, "--drain")
    try:
        assert await wait_exit(peer, 60) == 0
    finally:
        _stop(peer)
    rows = await item_rows(pool, ids)
    assert {(row["status"], row["attempts"]) for row in rows.values()} == {("completed", 0)}
    assert await email_count(pool) == 8


@pytest.mark.skipif(
    bool(os.environ.get("TEST_DATABASE_URL")),
    reason="restarts the embedded test server; an external TEST_DATABASE_URL server is not ours",
)
async def test_postgres_restart_mid_run_loses_nothing_and_listen_recovers(
    pool: Pool, database_url: str, tmp_path: Path
) -> None:
    user = await create_user(pool)
    step = behaviour(delay={"web_scraper": 0.2})
    ids = await enqueue(pool, user, [step] * 30, max_attempts=5)
    # A long poll interval: after the restart only LISTEN (and its re-poll) can wake them.
    options = ("--lease", "3", "--poll", "60", "--reaper", "0.3", "--concurrency", "4")
    workers = [spawn_worker(database_url, tmp_path, *options) for _ in range(2)]
    try:
        await wait_until(lambda: _any_completed(pool), timeout=30)
        await asyncio.to_thread(database.restart_server, database.server_directory())
        ids += await _enqueue_when_up(pool, user)
        await wait_until(lambda: _all_status(pool, "completed", 40), timeout=45)
    finally:
        _stop(*workers)

    rows = await item_rows(pool, ids)
    assert {row["status"] for row in rows.values()} == {"completed"}
    assert await pool.fetchval("SELECT count(DISTINCT queue_item_id) FROM emails") == 40
    assert await email_count(pool) == 40


async def _any_completed(pool: Pool) -> bool:
    return (await status_counts(pool)).get("completed", 0) > 0


async def _enqueue_when_up(pool: Pool, user: uuid.UUID) -> list[uuid.UUID]:
    for _ in range(100):
        try:
            return await enqueue(pool, user, ["after restart"] * 10)
        except (OSError, DatabaseUnavailable, ConnectionError):
            await asyncio.sleep(0.1)
    raise AssertionError("database did not come back")
