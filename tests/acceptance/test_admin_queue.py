"""POST /api/admin/queue/retry, and providers' state in /health and /metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from scribe.db.pool import Pool
from scribe.db.providers import ProviderTables
from scribe.providers.account import Status
from scribe.providers.accounts import Accounts
from scribe.providers.sharing import AccountSharing
from scribe.queue.requeue import RequeueFilter, requeue
from scribe.settings import Settings
from tests.conftest import auth_headers, serve
from tests.queue_support import create_user, enqueue, item_rows

ADMIN = "admin@uni.edu"


@pytest.fixture
async def admin_client(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(admin_emails=[ADMIN], scribe_worker=False)
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield http


async def _failed_items(pool: Pool, user: uuid.UUID, count: int, step: str) -> list[uuid.UUID]:
    ids = await enqueue(pool, user, ["x"] * count)
    await pool.execute(
        "UPDATE queue_items SET status = 'failed', failed_step = $2, attempts = 3,"
        " error_message = 'boom', completed_at = now() WHERE id = any($1::uuid[])",
        ids,
        step,
    )
    return ids


async def test_admin_retry_requeues_matching_failed_items_only(
    admin_client: httpx.AsyncClient, pool: Pool
) -> None:
    user, other = await create_user(pool), await create_user(pool)
    composer = await _failed_items(pool, user, 2, "email_composer")
    scraper = await _failed_items(pool, user, 1, "web_scraper")
    theirs = await _failed_items(pool, other, 1, "email_composer")

    response = await admin_client.post(
        "/api/admin/queue/retry",
        json={"user_id": str(user), "step": "email_composer"},
        headers=auth_headers(ADMIN),
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"requeued": 2, "ids": [str(i) for i in composer]}
    rows = await item_rows(pool)
    assert {rows[i]["status"] for i in composer} == {"pending"}
    assert {(rows[i]["attempts"], rows[i]["error_message"]) for i in composer} == {(0, None)}
    assert {rows[i]["status"] for i in scraper + theirs} == {"failed"}
    events = await pool.fetch(
        "SELECT kind, error FROM queue_item_events WHERE item_id = $1", composer[0]
    )
    assert [(e["kind"], e["error"]) for e in events] == [("requeue", "boom")]


async def test_admin_retry_needs_a_filter_and_an_admin(admin_client: httpx.AsyncClient) -> None:
    url = "/api/admin/queue/retry"
    no_filter = await admin_client.post(url, json={}, headers=auth_headers(ADMIN))
    assert no_filter.status_code == 400
    assert no_filter.json()["detail"] == "Give at least one of ids, user_id, failed_since or step."
    bad_step = await admin_client.post(url, json={"step": "nope"}, headers=auth_headers(ADMIN))
    assert bad_step.status_code == 422
    naive = await admin_client.post(
        url, json={"failed_since": "2026-01-01T00:00:00"}, headers=auth_headers(ADMIN)
    )
    assert naive.json() == {"requeued": 0, "ids": []}
    user = await admin_client.post(
        url, json={"step": "web_scraper"}, headers=auth_headers("user@uni.edu")
    )
    assert (user.status_code, user.json()) == (403, {"detail": "Admin access required"})
    assert (await admin_client.post(url, json={"step": "web_scraper"})).status_code == 401


@pytest.mark.parametrize("edge", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_admin_retry_refuses_a_failure_time_outside_1970_to_2100(
    admin_client: httpx.AsyncClient, edge: str
) -> None:
    response = await admin_client.post(
        "/api/admin/queue/retry", json={"failed_since": edge}, headers=auth_headers(ADMIN)
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "failed_since"] and "1970-2100" in error["msg"]


async def test_health_and_metrics_show_a_provider_down_with_status_200(
    admin_client: httpx.AsyncClient, pool: Pool
) -> None:
    await pool.execute(
        "INSERT INTO provider_states (provider, state, reason, since, next_probe_at, failures)"
        " VALUES ('anthropic', 'down', 'LLM returned HTTP 529: Overloaded',"
        " '2026-01-02T03:04:05Z', now() + interval '5 seconds', 3)"
    )
    health = await admin_client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == ("degraded: anthropic overloaded since 2026-01-02T03:04:05.000000Z")
    assert body["providers"] == {"anthropic": "overloaded since 2026-01-02T03:04:05.000000Z"}
    metrics = (await admin_client.get("/metrics")).text
    assert 'scribe_provider_down{provider="anthropic"} 1.0' in metrics
    assert 'scribe_provider_down{provider="exa"} 0.0' in metrics


async def test_health_and_metrics_name_each_provider_and_account_work_waits_on(
    admin_client: httpx.AsyncClient, pool: Pool
) -> None:
    await pool.execute(
        "INSERT INTO provider_states (provider, state, reason, since, next_probe_at, failures)"
        " VALUES ('anthropic:claude-haiku', 'down', 'HTTP 529', '2026-01-02T03:04:05Z',"
        " now() + interval '5 seconds', 3),"
        " ('anthropic:claude-sonnet', 'rate_limited', '429: calls wait 3600s',"
        " '2026-01-02T03:04:05Z', now() + interval '1 hour', 0),"
        " ('exa', 'rate_limited', '429: calls wait 60s', '2026-01-02T03:04:05Z',"
        " now() - interval '1 second', 0)"  # over: not reported
    )
    health = await admin_client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"].startswith("degraded: anthropic:claude-haiku overloaded since ")
    assert body["providers"] == {
        "anthropic:claude-haiku": "overloaded since 2026-01-02T03:04:05.000000Z",
        "anthropic:claude-sonnet": "rate-limited since 2026-01-02T03:04:05.000000Z: "
        "429: calls wait 3600s",
    }
    assert body["waiting_on"] == {
        "anthropic": ["anthropic:claude-haiku", "anthropic:claude-sonnet"]
    }
    metrics = (await admin_client.get("/metrics")).text
    # The provider is down while one of its model accounts is; each account is named.
    assert 'scribe_provider_down{provider="anthropic"} 1.0' in metrics
    assert 'scribe_provider_down{provider="exa"} 0.0' in metrics
    assert (
        'scribe_provider_account_waiting{account="anthropic:claude-haiku",provider="anthropic",'
        'state="down"} 1.0'
    ) in metrics
    assert (
        'scribe_provider_account_waiting{account="anthropic:claude-sonnet",provider="anthropic",'
        'state="rate_limited"} 1.0'
    ) in metrics
    assert 'account="exa"' not in metrics.split("scribe_provider_account_waiting")[-1]


async def test_cli_providers_resume_ends_the_wait_in_every_process_and_wakes_its_items(
    pool: Pool, database_url: str, tmp_path: Path
) -> None:
    account = "anthropic:claude-sonnet"
    other_process = Accounts(owner="other")
    other_process.get(account).pause("HTTP 401")
    sharing = AccountSharing(ProviderTables(pool), other_process, interval=1.0, window=10.0)
    await sharing.refresh()  # its state is shared; it has seen no resume yet
    user = await create_user(pool)
    [item] = await enqueue(pool, user, ["quantum widgets"])
    await pool.execute(
        "UPDATE queue_items SET waiting_for = $2, run_after = now() + interval '1 hour'"
        " WHERE id = $1",
        item,
        account,
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": database_url,
        "SCRIBE_DATA_DIR": str(tmp_path / "data"),
    }
    code, out = await _scribe(env, "providers")
    assert code == 0 and account in out and "paused" in out
    code, out = await _scribe(env, "providers", "resume", "anthropic")
    assert code == 0 and f"{account} was waiting" in out
    due = await pool.fetchval("SELECT run_after <= now() FROM queue_items WHERE id = $1", item)
    assert due  # its waiting item is due now
    await sharing.refresh()  # the other process applies the resume at its next round
    assert other_process.get(account).condition().status is Status.UP
    code, out = await _scribe(env, "providers", "resume", "acme")
    assert code == 2  # no such provider: nothing recorded
    assert await pool.fetchval("SELECT count(*) FROM provider_resumes") == 1


async def test_cli_queue_retry_requeues_by_id_and_failed_since(
    pool: Pool, database_url: str, tmp_path: Path
) -> None:
    user = await create_user(pool)
    first, second, old = await _failed_items(pool, user, 3, "web_scraper")
    await pool.execute(
        "UPDATE queue_items SET completed_at = now() - interval '3 hours' WHERE id = $1", old
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": database_url,
        "SCRIBE_DATA_DIR": str(tmp_path / "data"),
    }
    code, out = await _scribe(env, "queue", "retry", str(first), str(old), "--failed-since", "1h")
    assert (code, out.splitlines()) == (0, ["re-queued 1 failed item(s)", str(first)])
    code, out = await _scribe(env, "queue", "retry")
    assert code == 2 and out == ""
    code, out = await _scribe(env, "queue")
    assert code == 0 and "== queue_step_durations" in out and "== queue_providers" in out

    rows = await item_rows(pool)
    assert [rows[i]["status"] for i in (first, second, old)] == ["pending", "failed", "failed"]


async def test_requeue_matches_every_filter_given_up_to_the_limit_and_logs_who(
    pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    """In-process (the CLI test above runs in a subprocess): ids and failed_since together, the
    limit, and the log line naming who asked."""
    user = await create_user(pool)
    first, second, old = await _failed_items(pool, user, 3, "web_scraper")
    await pool.execute(
        "UPDATE queue_items SET completed_at = now() - interval '3 hours' WHERE id = $1", old
    )
    since = datetime.now(UTC) - timedelta(hours=1)
    with caplog.at_level(logging.INFO, logger="scribe.queue.requeue"):
        both = RequeueFilter(ids=[first, old], failed_since=since)
        assert await requeue(pool, both, requested_by="ops@uni.edu") == [first]
        assert await requeue(pool, RequeueFilter(user_id=user), requested_by="ops", limit=1) == [
            second
        ]
    [by_both, by_user] = [r.getMessage() for r in caplog.records]
    assert by_both.startswith("ops@uni.edu re-queued 1 failed item(s) (RequeueFilter(ids=")
    assert by_user.startswith("ops re-queued 1 failed item(s)")
    rows = await item_rows(pool)
    assert [rows[i]["status"] for i in (first, second, old)] == ["pending", "pending", "failed"]
    asked = await pool.fetch(
        "SELECT item_id, owner FROM queue_item_events WHERE kind = 'requeue' ORDER BY owner"
    )
    assert [(e["item_id"], e["owner"]) for e in asked] == [(second, "ops"), (first, "ops@uni.edu")]


async def _scribe(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scribe.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode().strip()
