"""The queue's statements against a real database: fair claim, fencing, reaper, retention,
idempotent enqueue, operator views, and query plans over a large finished history."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from scribe.db import emails, queue_items
from scribe.db.emails import CompletedEmail
from scribe.db.pool import Connection, Pool
from scribe.db.queries import sql
from scribe.db.queue_items import NewItem
from scribe.db.template_analyses import TemplateAnalysisStore
from scribe.queue import reaper
from scribe.settings import Settings
from tests.queue_support import create_user, enqueue, item_rows


async def _write_nothing(conn: Connection) -> None:
    raise AssertionError("a fenced-out completion must not write a result")


async def _claim(pool: Pool, limit: int, owner: str = "test-owner") -> list[uuid.UUID]:
    claimed = await queue_items.claim(
        pool, owner, limit, lease_seconds=60, first_steps={"email": "template_parser"}
    )
    return [item.id for item in claimed]


async def test_single_item_of_another_user_is_not_stuck_behind_a_big_batch(pool: Pool) -> None:
    ada, bob = await create_user(pool), await create_user(pool)
    batch = await enqueue(pool, ada, ["x"] * 100)
    [single] = await enqueue(pool, bob, ["y"])

    first_two = await _claim(pool, 1) + await _claim(pool, 1)
    assert first_two == [batch[0], single]


async def test_claim_interleaves_users_and_keeps_each_user_fifo(pool: Pool) -> None:
    ada, bob = await create_user(pool), await create_user(pool)
    a = await enqueue(pool, ada, ["x"] * 5)
    b = await enqueue(pool, bob, ["y"] * 5)

    claimed = await _claim(pool, 6)
    assert claimed == [a[0], b[0], a[1], b[1], a[2], b[2]]
    assert await _claim(pool, 10) == [a[3], b[3], a[4], b[4]]


async def test_concurrent_claims_never_share_an_item(pool: Pool) -> None:
    users = [await create_user(pool) for _ in range(3)]
    for user in users:
        await enqueue(pool, user, ["x"] * 20)
    results = await asyncio.gather(*(_claim(pool, 7, owner=f"o{n}") for n in range(9)))
    claimed = [item for result in results for item in result]
    assert len(claimed) == len(set(claimed))
    assert len(claimed) + len(await _claim(pool, 100)) == 60


async def test_fenced_writes_touch_nothing_after_the_lease_moved(pool: Pool) -> None:
    user = await create_user(pool)
    await enqueue(pool, user, ["x"])
    [item] = await queue_items.claim(pool, "old", 1, lease_seconds=60, first_steps={"email": "a"})
    stale = item.fence("old")
    # The lease expired and another process claimed it (claim 2; no attempt charged).
    await pool.execute("UPDATE queue_items SET lease_expires_at = now() - interval '1 s'")
    await reaper.reap_once(pool, _settings(retry_base=0))
    [again] = await queue_items.claim(pool, "new", 1, lease_seconds=60, first_steps={"email": "a"})
    assert (again.claims, again.attempts) == (2, 0)

    step = queue_items.StepDone("a", 1.0, 0.0)
    assert await queue_items.save_checkpoint(pool, stale, {}, {}, "b", [step]) is None
    retried = await queue_items.retry_later(
        pool, stale, 0, "e", "a", charge=True, reason="r", max_age_seconds=86400
    )
    assert retried is None
    assert await queue_items.fail(pool, stale, "e", "a", "permanent") is False
    assert await queue_items.release(pool, stale) is False
    assert await queue_items.mark_cancelled(pool, stale) is False
    assert await queue_items.complete(pool, stale, {}, [], _write_nothing) is False
    assert await queue_items.renew_leases(pool, "old", [stale], 60) == {}

    row = (await item_rows(pool, [item.id]))[item.id]
    assert (row["status"], row["locked_by"], row["claims"]) == ("processing", "new", 2)
    assert (row["attempts"], row["crashes"]) == (0, 1)
    assert await pool.fetchval("SELECT count(*) FROM emails") == 0


async def test_reaper_returns_expired_items_to_pending_or_failed(pool: Pool) -> None:
    user = await create_user(pool)
    retry, exhausted, cancelled, alive = await enqueue(pool, user, ["x"] * 4, max_attempts=2)
    await _claim(pool, 4)
    # Lost workers are counted in `crashes`, never in `attempts`: the poison bound is crashes.
    await pool.execute("UPDATE queue_items SET attempts = 1")
    await pool.execute(
        "UPDATE queue_items SET crashes = 10, suspect = true, blamed_crashes = 9 WHERE id = $1",
        exhausted,
    )
    await pool.execute(
        "UPDATE queue_items SET cancel_requested_at = now() WHERE id = $1", cancelled
    )
    await pool.execute(
        "UPDATE queue_items SET lease_expires_at = now() - interval '1 s' WHERE id <> $1", alive
    )
    counts = await reaper.reap_once(pool, _settings(retry_base=10))

    assert counts == {"pending": 1, "failed": 1, "cancelled": 1}
    rows = await item_rows(pool)
    assert rows[retry]["status"] == "pending" and rows[retry]["locked_by"] is None
    # It ran beside others: a suspect from now on, the loss not blamed on it.
    assert (rows[retry]["attempts"], rows[retry]["crashes"]) == (1, 1)
    assert (rows[retry]["suspect"], rows[retry]["blamed_crashes"]) == (True, 0)
    assert (rows[retry]["run_after"] - rows[retry]["updated_at"]).total_seconds() >= 5
    assert rows[exhausted]["status"] == "failed"
    assert rows[exhausted]["failed_step"] == "template_parser"
    assert "lease expired) 10 times running alone" in rows[exhausted]["error_message"]
    assert rows[exhausted]["blamed_crashes"] == 10
    assert "crashes its worker" in rows[exhausted]["error_message"]
    assert rows[cancelled]["status"] == "cancelled"
    assert rows[alive]["status"] == "processing"


async def test_a_due_suspect_is_claimed_alone_and_only_by_an_owner_running_nothing(
    pool: Pool,
) -> None:
    user = await create_user(pool)
    *healthy, suspect = await enqueue(pool, user, ["x"] * 4)
    await pool.execute("UPDATE queue_items SET suspect = true WHERE id = $1", suspect)

    async def claim(owner: str, limit: int, running: int) -> list[tuple[uuid.UUID, bool]]:
        items = await queue_items.claim(
            pool, owner, limit, lease_seconds=60, first_steps={"email": "a"}, running=running
        )
        return [(item.id, item.suspect) for item in items]

    # Just due: a busy owner leaves it to an idle one for a lease and claims the others.
    assert await claim("busy", 2, running=2) == [(healthy[0], False), (healthy[1], False)]
    due_in = await queue_items.seconds_until_next_due(pool, idle=False, suspect_wait=60)
    assert due_in is not None and due_in <= 0  # the third healthy item
    # Due for longer than a lease: a busy owner claims nothing (its jobs drain) ...
    await pool.execute(
        "UPDATE queue_items SET run_after = now() - interval '2 minutes' WHERE id = $1", suspect
    )
    assert await claim("busy", 2, running=2) == []
    assert await queue_items.seconds_until_next_due(pool, idle=False, suspect_wait=60) is None
    # ... and an owner running nothing takes the suspect, alone.
    assert await claim("idle", 4, running=0) == [(suspect, True)]
    assert await claim("busy", 4, running=2) == [(healthy[2], False)]


async def test_a_lost_worker_is_blamed_only_on_a_suspect_running_alone(pool: Pool) -> None:
    user = await create_user(pool)
    beside, alone = await enqueue(pool, user, ["x"] * 2)
    await _claim(pool, 2)
    await pool.execute("UPDATE queue_items SET suspect = true, crashes = 1 WHERE id = $1", alone)
    await pool.execute("UPDATE queue_items SET lease_expires_at = now() - interval '1 s'")

    await reaper.reap_once(pool, _settings(retry_base=0))

    rows = await item_rows(pool)
    got = {key: (r["crashes"], r["suspect"], r["blamed_crashes"]) for key, r in rows.items()}
    assert got == {beside: (1, True, 0), alone: (2, True, 1)}
    assert {row["status"] for row in rows.values()} == {"pending"}


async def test_retention_prunes_old_finished_items_and_leaves_their_emails_untouched(
    pool: Pool,
) -> None:
    user = await create_user(pool)
    *old, recent, live = await enqueue(pool, user, ["x"] * 52)
    await pool.execute(
        "UPDATE queue_items SET status = 'completed', completed_at = now() - interval '40 days'"
        " WHERE id = any($1::uuid[])",
        old,
    )
    await pool.executemany(
        "INSERT INTO emails (id, user_id, queue_item_id, recipient_name, recipient_interest,"
        " email_message, template_type) VALUES ($1, $2, $3, 'n', 'i', $4, 'general')",
        [(uuid.uuid4(), user, item, "m" * 1500) for item in old],
    )
    await pool.execute(
        "UPDATE queue_items SET status = 'completed', completed_at = now() WHERE id = $1", recent
    )
    emails_rows = "SELECT id, ctid::text, xmin::text, queue_item_id FROM emails ORDER BY id"
    before = [tuple(row) for row in await pool.fetch(emails_rows)]
    size_before = await pool.fetchval("SELECT pg_relation_size('emails')")

    counts = await reaper.reap_once(pool, _settings(retry_base=0))

    assert counts == {"pruned": 50}
    assert set(await item_rows(pool)) == {recent, live}
    # Same row versions (no rewrite), each still naming the item that made it; no growth.
    assert [tuple(row) for row in await pool.fetch(emails_rows)] == before
    assert {row[3] for row in before} == set(old)
    assert await pool.fetchval("SELECT pg_relation_size('emails')") == size_before


async def test_an_item_still_has_at_most_one_email(pool: Pool) -> None:
    user = await create_user(pool)
    [item] = await enqueue(pool, user, ["x"])
    insert = (
        "INSERT INTO emails (id, user_id, queue_item_id, recipient_name, recipient_interest,"
        " email_message, template_type) VALUES ($1, $2, $3, 'n', 'i', 'm', 'general')"
    )
    await pool.execute(insert, uuid.uuid4(), user, item)
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute(insert, uuid.uuid4(), user, item)
    assert await pool.fetchval("SELECT count(*) FROM emails") == 1


async def test_retention_prunes_a_batch_template_only_once_its_items_are_gone(
    pool: Pool,
) -> None:
    user = await create_user(pool)
    [gone] = await enqueue(pool, user, ["x"])
    kept = await enqueue(pool, user, ["y", "z"])
    # A batch and its items are created in one statement: they share created_at exactly.
    old = datetime.now(UTC) - timedelta(days=40)
    await pool.execute("UPDATE queue_batches SET created_at = $1", old)
    await pool.execute("UPDATE queue_items SET created_at = $1", old)
    await pool.execute(
        "UPDATE queue_items SET status = 'completed', completed_at = $2 WHERE id = $1", gone, old
    )
    await pool.execute(
        "UPDATE queue_items SET status = 'completed', completed_at = now() WHERE id = $1", kept[0]
    )

    assert await reaper.reap_once(pool, _settings(retry_base=0)) == {"pruned": 1}
    assert await pool.fetchval("SELECT count(*) FROM queue_batches") == 1
    [claimed] = await queue_items.claim(pool, "me", 1, lease_seconds=60, first_steps={"email": "a"})
    assert (claimed.id, claimed.email_template) == (kept[1], "Dear {{name}}, I enjoyed your work.")


async def test_retention_prunes_template_analyses_older_than_the_retention_age(
    pool: Pool,
) -> None:
    store = TemplateAnalysisStore(pool)
    await store.save("old", {"template_type": "general", "placeholders": []})
    await store.save("new", {"template_type": "research", "placeholders": ["{{paper}}"]})
    old = datetime.now(UTC) - timedelta(days=40)
    await pool.execute("UPDATE template_analyses SET created_at = $1 WHERE key = 'old'", old)

    await reaper.reap_once(pool, _settings(retry_base=0))

    assert await store.load("old") is None
    assert await store.load("new") == {"template_type": "research", "placeholders": ["{{paper}}"]}


async def test_a_batch_stores_its_template_once_and_every_item_reads_it(pool: Pool) -> None:
    user = await create_user(pool)
    ids = await enqueue(pool, user, ["x", "y", "z"], template="Hello {{name}}")
    assert await pool.fetchval("SELECT count(*) FROM queue_batches") == 1
    claimed = await queue_items.claim(pool, "me", 3, lease_seconds=60, first_steps={"email": "a"})
    assert [(item.id, item.email_template) for item in claimed] == [
        (item_id, "Hello {{name}}") for item_id in ids
    ]


async def test_a_user_returning_after_finished_work_is_not_queued_behind_a_backlog(
    pool: Pool,
) -> None:
    ada, bob = await create_user(pool), await create_user(pool)
    await enqueue(pool, ada, ["x"] * 3)
    assert len(await _claim(pool, 3)) == 3  # ada's earlier work, now running or done
    backlog = await enqueue(pool, bob, ["y"] * 50)
    [again] = await enqueue(pool, ada, ["x"])

    assert await _claim(pool, 2) == [backlog[0], again]


async def test_same_idempotency_key_creates_items_once_even_concurrently(pool: Pool) -> None:
    user = await create_user(pool)
    items = [NewItem("Ada Lovelace", "engines"), NewItem("Alan Turing", "computability")]

    async def submit() -> list[uuid.UUID]:
        return await queue_items.enqueue(
            pool, user, items, "Dear {{name}}", max_attempts=3, idempotency_key="key-1"
        )

    results = await asyncio.gather(*(submit() for _ in range(4)))
    assert all(result == results[0] for result in results)
    assert len(await item_rows(pool)) == 2
    other = await queue_items.enqueue(
        pool, user, items, "Dear {{name}}", max_attempts=3, idempotency_key="key-2"
    )
    assert set(other).isdisjoint(results[0])


async def test_operator_views_answer(pool: Pool) -> None:
    user = await create_user(pool)
    await enqueue(pool, user, ["x"] * 3)
    await _claim(pool, 1)
    [overview] = await queue_items.operator_view(pool, "queue_overview")
    assert (overview["pending"], overview["processing"]) == (2, 1)
    [active] = await queue_items.operator_view(pool, "queue_active")
    assert active["owner"] == "test-owner" and active["current_step"] == "template_parser"
    assert await queue_items.operator_view(pool, "queue_failures") == []


async def test_claim_reaper_and_prune_use_indexes_over_100k_finished_rows(pool: Pool) -> None:
    users = [await create_user(pool) for _ in range(20)]
    await pool.execute(
        """
        INSERT INTO queue_items (id, user_id, recipient_name, recipient_interest, batch_id,
                                 status, attempts, completed_at, created_at)
        SELECT gen_random_uuid(), ($1::uuid[])[1 + n % 20], 'n', 'i', gen_random_uuid(),
               (ARRAY['completed', 'failed', 'cancelled'])[1 + n % 3], 1,
               now() - n * interval '1 second', now() - n * interval '1 second'
        FROM generate_series(1, 100000) AS n
        """,
        users,
    )
    for user in users[:5]:
        await enqueue(pool, user, ["x"] * 3)
    await _claim(pool, 4)
    await pool.execute("ANALYZE queue_items")

    plans = {
        "claim": await _plan(
            pool, sql("claim_queue_items"), "o", 8, 60.0, {"email": "template_parser"}, 0
        ),
        "reap": await _plan(pool, sql("reap_expired_leases"), 100, [5.0, 10.0], 10, 86400.0),
        "prune": await _plan(pool, sql("prune_finished_queue_items"), 86400.0 * 30, 500),
    }
    for name, plan in plans.items():
        scans = _scans(plan)
        assert scans, name
        assert all(node != "Seq Scan" for node, relation in scans if relation == "queue_items"), (
            f"{name}: {scans}"
        )


async def _plan(pool: Pool, statement: str, *args: Any) -> Any:
    raw = await pool.fetchval("EXPLAIN (FORMAT JSON) " + statement, *args)
    return json.loads(raw) if isinstance(raw, str) else raw


def _scans(plan: Any) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    if isinstance(plan, list):
        for entry in plan:
            found += _scans(entry)
    elif isinstance(plan, dict):
        if "Node Type" in plan and "Scan" in plan["Node Type"]:
            found.append((plan["Node Type"], plan.get("Relation Name")))
        for value in plan.values():
            if isinstance(value, list | dict):
                found += _scans(value)
    return found


def _settings(*, retry_base: float) -> Settings:
    return Settings(
        _env_file=None,
        scribe_retry_base_seconds=retry_base,
        scribe_retention_days=30,
    )


async def test_nul_characters_in_pipeline_output_are_stored_without_them(pool: Pool) -> None:
    """A scraped page or search hit with U+0000 must not make the checkpoint or completion fail
    (Postgres text and jsonb reject it), which crashed the job on every attempt."""
    user = await create_user(pool)
    [item_id] = await enqueue(pool, user, ["x"])
    [item] = await queue_items.claim(pool, "me", 1, lease_seconds=60, first_steps={"email": "a"})
    fence = item.fence("me")
    checkpoint = {"data": {"scraped_content": "page\x00text", "k\x00": ["a\x00"]}}
    step = queue_items.StepDone("a", 1.0, 0.0)
    assert (
        await queue_items.save_checkpoint(pool, fence, checkpoint, {"a": 1.0}, "b", [step]) is False
    )
    saved = await pool.fetchval("SELECT checkpoint FROM queue_items WHERE id = $1", item_id)
    assert saved == {"data": {"scraped_content": "pagetext", "k": ["a"]}}
    email = CompletedEmail(
        email_id=uuid.uuid4(),
        email_message="Dear\x00 Ada",
        template_type="general",
        metadata={"scraping_metadata": {"pages": [{"text": "x\x00y"}]}},
        is_confident=False,
    )

    async def write_email(conn: Connection) -> None:
        await emails.insert_completed(
            conn,
            email,
            queue_item_id=item.id,
            user_id=item.user_id,
            recipient_name=item.recipient_name,
            recipient_interest=item.recipient_interest,
        )

    assert await queue_items.complete(pool, fence, {"a": 1.0}, [], write_email)
    # A completed item is never resumed: its checkpoint is not kept (the email holds the result).
    assert await pool.fetchval("SELECT checkpoint FROM queue_items WHERE id = $1", item_id) is None
    stored = await pool.fetchrow(
        "SELECT email_message, metadata FROM emails WHERE id = $1", email.email_id
    )
    assert stored is not None and stored["email_message"] == "Dear Ada"
    assert stored["metadata"] == {"scraping_metadata": {"pages": [{"text": "xy"}]}}


async def test_nul_characters_in_an_error_message_are_stored_without_them(pool: Pool) -> None:
    user = await create_user(pool)
    [item_id] = await enqueue(pool, user, ["x"])
    [item] = await queue_items.claim(pool, "me", 1, lease_seconds=60, first_steps={"email": "a"})
    assert await queue_items.fail(pool, item.fence("me"), "bad\x00page", "web_scraper", "x")
    assert (await item_rows(pool, [item_id]))[item_id]["error_message"] == "badpage"


async def test_item_changes_are_announced_only_for_watched_users(
    pool: Pool, database_url: str
) -> None:
    """A worker's writes send no NOTIFY while nobody streams the user's items (each one
    serialises commits); once a stream registers, inserts and transitions are announced."""
    quiet, watched = await create_user(pool), await create_user(pool)
    stream = uuid.uuid4()
    await queue_items.watch(pool, watched, stream, 60)
    received: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database_url)
    try:
        await listener.add_listener(
            "scribe_queue_items", lambda _c, _p, _ch, payload: received.put_nowait(payload)
        )
        await enqueue(pool, quiet, ["x", "y"])
        await _claim(pool, 2)
        await pool.execute("SELECT pg_notify('scribe_queue_items', 'marker')")
        # Notifications arrive in commit order: nothing for the quiet user came before this.
        assert await asyncio.wait_for(received.get(), 10) == "marker"

        await enqueue(pool, watched, ["x", "y"])  # one notification per insert statement
        await _claim(pool, 1)
        await queue_items.unwatch(pool, watched, stream)
        await _claim(pool, 1)
        await pool.execute("SELECT pg_notify('scribe_queue_items', 'marker')")
        payloads = [await asyncio.wait_for(received.get(), 10) for _ in range(3)]
        assert payloads == [str(watched), str(watched), "marker"]
    finally:
        await listener.close()
