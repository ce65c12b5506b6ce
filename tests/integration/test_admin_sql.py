"""The admin reports' query plans over a large history (100k emails, 100k queue items): every
per-user, error-log, user-list and recent-range read goes through an index, never a scan of the
table, the lists the page reads whole at their default length too."""

from __future__ import annotations

import json
import uuid
from typing import Any

from scribe.db.pool import Pool
from scribe.db.queries import sql
from scribe.settings import Settings
from tests.queue_support import create_user

ROWS = 100_000
LIST_LIMIT = Settings.model_fields["scribe_admin_list_limit"].default


async def _seed(pool: Pool) -> list[uuid.UUID]:
    users = [await create_user(pool) for _ in range(50)]
    await pool.execute(
        """
        INSERT INTO emails (id, user_id, recipient_name, recipient_interest, email_message,
                            template_type, is_confident, created_at)
        SELECT gen_random_uuid(), ($1::uuid[])[1 + n % 50], 'n', 'i', 'm', 'general', n % 2 = 0,
               now() - n * interval '5 minutes'
        FROM generate_series(1, $2::int) AS n
        """,
        users,
        ROWS,
    )
    await pool.execute(
        """
        INSERT INTO queue_items (id, user_id, recipient_name, recipient_interest, batch_id,
                                 status, attempts, started_at, completed_at, created_at,
                                 failed_step, error_message)
        SELECT gen_random_uuid(), ($1::uuid[])[1 + n % 50], 'n', 'i', gen_random_uuid(),
               CASE WHEN n % 100 = 0 THEN 'failed' ELSE 'completed' END, 1,
               now() - n * interval '5 minutes', now() - n * interval '5 minutes',
               now() - n * interval '5 minutes',
               CASE WHEN n % 100 = 0 THEN 'web_scraper' END,
               CASE WHEN n % 100 = 0 THEN 'boom' END
        FROM generate_series(1, $2::int) AS n
        """,
        users,
        ROWS,
    )
    await pool.execute("ANALYZE emails")
    await pool.execute("ANALYZE queue_items")
    return users


async def test_admin_reads_use_indexes_over_a_large_history(pool: Pool) -> None:
    users = await _seed(pool)
    user = users[7]
    plans = {
        "user emails count": await _plan(pool, sql("admin_count_user_emails"), user),
        "user emails page": await _plan(pool, sql("admin_list_user_emails"), user, 20, 40),
        "user queue": await _plan(pool, sql("admin_list_user_queue"), user, 500),
        "activity": await _plan(pool, sql("admin_activity"), 12),
        "errors": await _plan(pool, sql("admin_list_errors"), 100),
        # The two lists the page reads whole, at their default length (SCRIBE_ADMIN_LIST_LIMIT)
        "whole errors": await _plan(pool, sql("admin_list_errors"), LIST_LIMIT),
        "whole users": await _plan(pool, sql("admin_list_users"), LIST_LIMIT),
    }
    for name, plan in plans.items():
        scans = _scans(plan)
        assert scans, name
        assert not [
            relation
            for node, relation in scans
            if node == "Seq Scan" and relation in ("emails", "queue_items")
        ], f"{name}: {scans}"


async def test_admin_reports_answer_correctly_over_a_large_history(pool: Pool) -> None:
    users = await _seed(pool)
    failed = await pool.fetch(sql("admin_list_errors"), 1000)
    assert len(failed) == ROWS // 100
    assert [row["created_at"] for row in failed] == sorted(
        (row["created_at"] for row in failed), reverse=True
    )
    overview = await pool.fetchrow(sql("admin_overview"))
    assert overview is not None
    assert (overview["total_emails"], overview["confident_emails"]) == (ROWS, ROWS // 2)
    assert overview["emails_this_week"] == 7 * 24 * 12 - 1  # one every 5 minutes
    assert overview["active_users_this_week"] == 50
    listed = await pool.fetch(sql("admin_list_users"), LIST_LIMIT)
    assert sum(row["actual_email_count"] for row in listed) == ROWS
    assert sum(row["queue_submissions"] for row in listed) == ROWS
    assert sum(row["failed_count"] for row in listed) == ROWS // 100
    assert {row["id"] for row in listed} == set(users)


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
