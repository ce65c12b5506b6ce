"""/api/admin over HTTP: who may call it, the shapes the frontend's zod schemas check, the
arithmetic of the overview, pagination, ordering and bounds."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from scribe.api.common import frontend_can_show
from scribe.db import users
from scribe.db.pool import Pool
from scribe.settings import Settings
from tests.conftest import TEST_JWT_SECRET, auth_headers, serve
from tests.factories import UTC_Z, add_email, add_template
from tests.queue_support import create_user, enqueue

ADMIN = "boss@uni.edu"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
# A fixed id (test ids must be the same in every process that collects them, as xdist requires):
# the routes refuse before looking the user up.
SOMEONE = uuid.UUID("5c0f3a56-8d3e-4b8e-9a53-0d8f2e6b9c11")
ROUTES = [
    "/api/admin/overview",
    "/api/admin/users",
    f"/api/admin/users/{SOMEONE}/emails",
    f"/api/admin/users/{SOMEONE}/templates",
    f"/api/admin/users/{SOMEONE}/queue",
    "/api/admin/activity",
    "/api/admin/errors",
]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """ADMIN_EMAILS as an operator would write it: padded, mixed case, two entries. No consumer:
    the tests arrange queue rows themselves."""
    return make_settings(admin_emails=" Boss@Uni.edu , other-admin@uni.edu", scribe_worker=False)


def admin() -> dict[str, str]:
    """Headers of an admin caller (who has no local profile)."""
    return auth_headers("BOSS@uni.edu")


def assert_uuid(value: Any) -> None:
    assert isinstance(value, str) and str(uuid.UUID(value)) == value


def assert_z(value: Any) -> None:
    assert isinstance(value, str) and UTC_Z.match(value), value


async def set_item(pool: Pool, item_id: uuid.UUID, status: str, **times: datetime) -> None:
    """Move a queue item to a finished status with given timestamps."""
    await pool.execute(
        "UPDATE queue_items SET status = $2, started_at = $3, completed_at = $4,"
        " created_at = coalesce($5, created_at), failed_step = $6, error_message = $7"
        " WHERE id = $1",
        item_id,
        status,
        times.get("started_at"),
        times.get("completed_at"),
        times.get("created_at"),
        "web_scraper" if status == "failed" else None,
        "Search failed: HTTP 500" if status == "failed" else None,
    )


# --- who may call ---


@pytest.mark.parametrize("path", ROUTES)
async def test_admin_routes_answer_403_to_a_non_admin(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, headers=auth_headers("student@uni.edu"))
    assert response.status_code == 403
    assert response.json() == {"detail": "Admin access required"}


@pytest.mark.parametrize("path", ROUTES)
async def test_admin_routes_answer_403_to_a_token_without_an_email(
    client: httpx.AsyncClient, path: str
) -> None:
    now = int(time.time())
    claims = {"sub": str(uuid.uuid4()), "aud": "authenticated", "role": "authenticated"}
    token = jwt.encode({**claims, "exp": now + 600}, TEST_JWT_SECRET, algorithm="HS256")
    response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.json() == {"detail": "Admin access required"}


async def test_token_without_an_email_still_gets_401_on_user_routes(
    client: httpx.AsyncClient,
) -> None:
    now = int(time.time())
    claims = {"sub": str(uuid.uuid4()), "aud": "authenticated", "role": "authenticated"}
    token = jwt.encode({**claims, "exp": now + 600}, TEST_JWT_SECRET, algorithm="HS256")
    response = await client.get("/api/user/profile", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_admin_routes_answer_401_without_a_token(client: httpx.AsyncClient) -> None:
    for path in ROUTES:
        assert (await client.get(path)).status_code == 401


@pytest.mark.parametrize("suffix", ["emails", "templates", "queue"])
async def test_user_routes_answer_400_for_a_malformed_id_and_404_for_an_unknown_one(
    client: httpx.AsyncClient, suffix: str
) -> None:
    bad = await client.get(f"/api/admin/users/not-a-uuid/{suffix}", headers=admin())
    assert bad.status_code == 400 and "detail" in bad.json()
    unknown = await client.get(f"/api/admin/users/{uuid.uuid4()}/{suffix}", headers=admin())
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "User not found."}


# --- overview ---


async def test_overview_of_an_empty_service_is_all_zeros(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/admin/overview", headers=admin())
    assert response.status_code == 200
    assert response.json() == {
        "total_users": 0,
        "total_emails": 0,
        "total_templates": 0,
        "success_rate": 0,
        "avg_gen_time_seconds": 0,
        "confidence_rate": 0,
        "error_count": 0,
        "emails_this_week": 0,
        "active_users_this_week": 0,
    }


async def test_overview_figures_match_a_seeded_database(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    now = datetime.now(UTC)
    ada, bob, cy = [await create_user(pool) for _ in range(3)]
    # Emails: 4 in all (one discarded), 3 confident; 3 in the last 7 days from 2 users.
    await add_email(pool, ada, now - timedelta(hours=1), is_confident=True)
    await add_email(pool, ada, now - timedelta(days=2), is_confident=False, displayed=False)
    await add_email(pool, bob, now - timedelta(days=6), is_confident=True)
    await add_email(pool, cy, now - timedelta(days=10), is_confident=True)
    await add_template(pool, ada)
    await add_template(pool, bob)
    # Queue: 2 completed (10 s and 20.5 s), 1 failed, 1 cancelled, 2 pending.
    done1, done2, failed, cancelled, *_pending = await enqueue(pool, ada, ["x"] * 6)
    start = now - timedelta(minutes=5)
    ten = start + timedelta(seconds=10)
    await set_item(pool, done1, "completed", started_at=start, completed_at=ten)
    await set_item(
        pool,
        done2,
        "completed",
        started_at=start,
        completed_at=start + timedelta(seconds=20.5),
    )
    await set_item(pool, failed, "failed", started_at=start, completed_at=start)
    await set_item(pool, cancelled, "cancelled", completed_at=start)

    response = await client.get("/api/admin/overview", headers=admin())
    assert response.status_code == 200
    assert response.json() == {
        "total_users": 3,
        "total_emails": 4,
        "total_templates": 2,
        "success_rate": 66.67,  # 2 completed of 3 finished (cancelled counts for neither)
        "avg_gen_time_seconds": 15.25,
        "confidence_rate": 75.0,
        "error_count": 1,
        "emails_this_week": 2 + 1,
        "active_users_this_week": 2,
    }


async def test_overview_rates_are_rounded_to_two_places(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    user = await create_user(pool)
    for confident in (True, False, False):
        await add_email(pool, user, is_confident=confident)
    first, second, third = await enqueue(pool, user, ["x"] * 3)
    await set_item(pool, first, "completed", started_at=T0, completed_at=T0)
    await set_item(pool, second, "completed", started_at=T0, completed_at=T0)
    await set_item(pool, third, "failed", started_at=T0, completed_at=T0)
    body = (await client.get("/api/admin/overview", headers=admin())).json()
    assert body["success_rate"] == 66.67
    assert body["confidence_rate"] == 33.33


async def test_success_rate_leaves_cancelled_and_unfinished_items_out(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    user = await create_user(pool)
    items = await enqueue(pool, user, ["x"] * 86)
    statuses = ["completed"] * 79 + ["failed"] + ["cancelled"] * 4
    for item, status in zip(items, statuses, strict=False):  # the last two stay pending
        await set_item(pool, item, status, started_at=T0, completed_at=T0)
    body = (await client.get("/api/admin/overview", headers=admin())).json()
    assert body["success_rate"] == 98.75  # 79 / (79 + 1): the page showed 94.0 before
    assert body["error_count"] == 1


async def test_the_lists_the_page_reads_whole_hold_what_the_cards_count(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    # More than the former defaults (1000 users, 100 errors), read as the page reads them.
    user = await create_user(pool)
    await pool.execute(
        "INSERT INTO users (id, email) SELECT gen_random_uuid(), 'u' || n || '@uni.edu'"
        " FROM generate_series(1, 1100) AS n"
    )
    for item in await enqueue(pool, user, ["x"] * 150):
        await set_item(pool, item, "failed", started_at=T0, completed_at=T0)
    overview = (await client.get("/api/admin/overview", headers=admin())).json()
    listed_users = (await client.get("/api/admin/users", headers=admin())).json()
    listed_errors = (await client.get("/api/admin/errors", headers=admin())).json()
    assert len(listed_users) == overview["total_users"] == 1101
    assert len(listed_errors) == overview["error_count"] == 150


async def test_the_whole_lists_stop_at_their_setting(
    make_settings: Callable[..., Settings], pool: Pool
) -> None:
    settings = make_settings(admin_emails=ADMIN, scribe_admin_list_limit=100)
    user = await create_user(pool)
    for item in await enqueue(pool, user, ["x"] * 101):
        await set_item(pool, item, "failed", started_at=T0, completed_at=T0)
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        assert len((await http.get("/api/admin/errors", headers=admin())).json()) == 100
        over = await http.get("/api/admin/errors", params={"limit": 101}, headers=admin())
        assert over.status_code == 422
        assert over.json()["detail"][0]["loc"] == ["query", "limit"]


async def test_a_stored_address_the_page_cannot_parse_is_shown_as_a_placeholder(
    client: httpx.AsyncClient, pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    # Rows stored before sign-in addresses were checked: one would blank the whole admin page.
    good = await create_user(pool, "ada@uni.edu")
    bad = [await create_user(pool, email) for email in ("jörg@münchen.de", "root@localhost")]
    for item in await enqueue(pool, bad[0], ["x"]):
        await set_item(pool, item, "failed", started_at=T0, completed_at=T0)
    with caplog.at_level(logging.WARNING, logger="scribe.api.admin"):
        listed = (await client.get("/api/admin/users", headers=admin())).json()
    emails = {row["id"]: row["email"] for row in listed}
    assert emails[str(good)] == "ada@uni.edu"
    for user in bad:
        assert emails[str(user)] == f"unreadable-address.{user.hex[:12]}@example.invalid"
        assert frontend_can_show(emails[str(user)])
    [line] = [r.getMessage() for r in caplog.records if r.name == "scribe.api.admin"]
    assert "2 stored address(es)" in line and str(bad[0]) in line and str(bad[1]) in line
    # The error log's user_email is a plain string in the page's schema: kept as stored.
    [error] = (await client.get("/api/admin/errors", headers=admin())).json()
    assert error["user_email"] == "jörg@münchen.de"


# --- users ---


async def test_users_list_has_every_key_and_puts_most_generations_first(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    quiet = await create_user(pool, "quiet@uni.edu")
    busy = await create_user(pool, "busy@uni.edu")
    await pool.execute(
        "UPDATE users SET generation_count = 5, display_name = 'B' WHERE id = $1", busy
    )
    await users.set_template(pool, busy, "Dear {{name}},\n")
    for _ in range(2):
        await add_email(pool, busy)
    await add_email(pool, busy, displayed=False)
    items = await enqueue(pool, busy, ["x"] * 4)
    await set_item(pool, items[0], "failed", started_at=T0, completed_at=T0)

    response = await client.get("/api/admin/users", headers=admin())
    assert response.status_code == 200
    body = response.json()
    assert [row["id"] for row in body] == [str(busy), str(quiet)]
    keys = {
        "id", "email", "display_name", "generation_count", "template_count", "onboarded",
        "created_at", "actual_email_count", "queue_submissions", "failed_count", "email_template",
    }  # fmt: skip
    for row in body:
        assert set(row) == keys
        assert_uuid(row["id"])
        assert_z(row["created_at"])
    first, second = body
    assert first["email"] == "busy@uni.edu" and first["display_name"] == "B"
    assert (first["generation_count"], first["actual_email_count"]) == (5, 3)
    assert (first["queue_submissions"], first["failed_count"]) == (4, 1)
    assert first["email_template"] == "Dear {{name}},\n"
    assert second["display_name"] is None and second["email_template"] is None
    assert (second["actual_email_count"], second["queue_submissions"]) == (0, 0)


async def test_users_list_is_bounded_by_limit(client: httpx.AsyncClient, pool: Pool) -> None:
    for _ in range(3):
        await create_user(pool)
    response = await client.get("/api/admin/users", params={"limit": 2}, headers=admin())
    assert len(response.json()) == 2
    too_many = await client.get("/api/admin/users", params={"limit": 100_000}, headers=admin())
    assert too_many.status_code == 422


# --- a user's emails ---


async def test_user_emails_page_has_every_key_and_includes_discarded_newest_first(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    user = await create_user(pool)
    older = await add_email(pool, user, T0, displayed=False)
    newer = await add_email(pool, user, T0 + timedelta(minutes=1))
    response = await client.get(f"/api/admin/users/{user}/emails", headers=admin())
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("total", "page", "per_page", "pages")} == {
        "total": 2,
        "page": 1,
        "per_page": 20,
        "pages": 1,
    }
    assert [item["id"] for item in body["items"]] == [str(newer.id), str(older.id)]
    keys = {
        "id", "recipient_name", "recipient_interest", "email_message", "template_type",
        "is_confident", "metadata", "created_at",
    }  # fmt: skip
    for item in body["items"]:
        assert set(item) == keys
        assert_uuid(item["id"])
        assert_z(item["created_at"])
    assert body["items"][1]["created_at"] == "2026-01-01T12:00:00.000000Z"
    assert body["items"][0]["metadata"] == newer.metadata


async def test_user_emails_pages_for_zero_exact_multiple_and_partial_last_page(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    user = await create_user(pool)
    url = f"/api/admin/users/{user}/emails"
    empty = (await client.get(url, headers=admin())).json()
    assert (empty["items"], empty["total"], empty["pages"]) == ([], 0, 1)

    ids = [(await add_email(pool, user, T0 + timedelta(seconds=i))).id for i in range(10)]
    newest_first = [str(i) for i in reversed(ids)]
    exact = (await client.get(url, params={"per_page": 5}, headers=admin())).json()
    assert (exact["total"], exact["pages"]) == (10, 2)

    await add_email(pool, user, T0 - timedelta(days=1))  # the oldest: alone on the last page
    last = (await client.get(url, params={"per_page": 5, "page": 3}, headers=admin())).json()
    assert (last["total"], last["page"], last["per_page"], last["pages"]) == (11, 3, 5, 3)
    assert len(last["items"]) == 1
    second = (await client.get(url, params={"per_page": 5, "page": 2}, headers=admin())).json()
    assert [item["id"] for item in second["items"]] == newest_first[5:10]
    beyond = (await client.get(url, params={"per_page": 5, "page": 9}, headers=admin())).json()
    assert (beyond["items"], beyond["total"], beyond["pages"]) == ([], 11, 3)


@pytest.mark.parametrize(
    "params", [{"page": 0}, {"per_page": 0}, {"per_page": 101}, {"page": "x"}, {"page": "9" * 30}]
)
async def test_user_emails_refuses_bad_paging(
    client: httpx.AsyncClient, pool: Pool, params: dict[str, Any]
) -> None:
    user = await create_user(pool)
    response = await client.get(f"/api/admin/users/{user}/emails", params=params, headers=admin())
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


# --- a user's templates and queue ---


async def test_user_templates_have_every_key_newest_first(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    user = await create_user(pool)
    old = await add_template(pool, user, T0)
    new = await add_template(pool, user, T0 + timedelta(hours=1))
    response = await client.get(f"/api/admin/users/{user}/templates", headers=admin())
    assert response.status_code == 200
    body = response.json()
    assert [row["id"] for row in body] == [str(new.id), str(old.id)]
    for row in body:
        assert set(row) == {"id", "template_text", "user_instructions", "pdf_url", "created_at"}
        assert_uuid(row["id"])
        assert_z(row["created_at"])
    assert body[0]["template_text"] == new.template_text


async def test_user_queue_has_every_key_newest_first_with_cancelled_items(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    user = await create_user(pool)
    first, second, third = await enqueue(pool, user, ["x"] * 3)
    await set_item(pool, first, "failed", started_at=T0, completed_at=T0, created_at=T0)
    await set_item(pool, second, "cancelled", completed_at=T0, created_at=T0)  # same instant
    response = await client.get(f"/api/admin/users/{user}/queue", headers=admin())
    assert response.status_code == 200
    body = response.json()
    assert [row["id"] for row in body] == [str(third), str(second), str(first)]
    keys = {
        "id", "recipient_name", "recipient_interest", "status", "current_step", "error_message",
        "started_at", "completed_at", "created_at",
    }  # fmt: skip
    for row in body:
        assert set(row) == keys
        assert_uuid(row["id"])
        assert_z(row["created_at"])
    assert [row["status"] for row in body] == ["pending", "cancelled", "failed"]
    assert body[0]["started_at"] is None and body[0]["completed_at"] is None
    assert_z(body[2]["started_at"])
    assert body[2]["error_message"] == "Search failed: HTTP 500"
    limited = await client.get(
        f"/api/admin/users/{user}/queue", params={"limit": 1}, headers=admin()
    )
    assert [row["id"] for row in limited.json()] == [str(third)]


# --- activity and errors ---


async def test_activity_lists_twelve_weeks_newest_first(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    ada, bob = await create_user(pool), await create_user(pool)
    now = datetime.now(UTC)
    monday = (now - timedelta(days=now.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    await add_email(pool, ada, monday + timedelta(minutes=1))
    await add_email(pool, ada, monday + timedelta(minutes=2))
    await add_email(pool, bob, monday + timedelta(minutes=3))
    await add_email(pool, bob, monday - timedelta(days=7) + timedelta(hours=1))
    await add_email(pool, bob, monday - timedelta(weeks=13))  # outside the window

    response = await client.get("/api/admin/activity", headers=admin())
    assert response.status_code == 200
    body = response.json()
    assert len(body) == 12
    weeks = [(monday - timedelta(weeks=n)).date().isoformat() for n in range(12)]
    assert [row["week"] for row in body] == weeks
    assert body[0] == {"week": weeks[0], "emails_generated": 3, "active_users": 2}
    assert body[1] == {"week": weeks[1], "emails_generated": 1, "active_users": 1}
    assert all(row["emails_generated"] == 0 for row in body[2:])


async def test_errors_list_failed_items_newest_first_with_the_failed_step(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    user = await create_user(pool, "ada@uni.edu")
    await pool.execute("UPDATE users SET display_name = 'Ada' WHERE id = $1", user)
    older, newer, ok = await enqueue(pool, user, ["x"] * 3)
    await set_item(pool, older, "failed", started_at=T0, completed_at=T0, created_at=T0)
    await set_item(
        pool, newer, "failed", started_at=T0, completed_at=T0, created_at=T0 + timedelta(days=1)
    )
    await pool.execute(
        "UPDATE queue_items SET current_step = 'email_composer' WHERE id = $1", newer
    )
    await set_item(pool, ok, "completed", started_at=T0, completed_at=T0)

    response = await client.get("/api/admin/errors", headers=admin())
    assert response.status_code == 200
    body = response.json()
    assert [row["id"] for row in body] == [str(newer), str(older)]
    keys = {
        "id", "user_email", "user_display_name", "recipient_name", "current_step",
        "error_message", "created_at", "started_at",
    }  # fmt: skip
    for row in body:
        assert set(row) == keys
        assert_uuid(row["id"])
        assert_z(row["created_at"])
        assert_z(row["started_at"])
        assert row["user_email"] == "ada@uni.edu" and row["user_display_name"] == "Ada"
        assert row["current_step"] == "web_scraper"  # the failed step, not where it stopped
        assert row["error_message"] == "Search failed: HTTP 500"


async def test_errors_are_bounded_by_limit(client: httpx.AsyncClient, pool: Pool) -> None:
    user = await create_user(pool)
    for item in await enqueue(pool, user, ["x"] * 3):
        await set_item(pool, item, "failed", started_at=T0, completed_at=T0)
    limited = await client.get("/api/admin/errors", params={"limit": 2}, headers=admin())
    assert len(limited.json()) == 2
    for bad in (0, 10_001):  # above SCRIBE_ADMIN_LIST_LIMIT (10000)
        response = await client.get("/api/admin/errors", params={"limit": bad}, headers=admin())
        assert response.status_code == 422
