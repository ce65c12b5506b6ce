"""/api/queue and /api/email/generate|status over HTTP, with a drained in-test consumer."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from scribe.db.pool import Pool
from scribe.emails.handler import email_handlers
from scribe.queue.consumer import Consumer
from scribe.settings import Settings
from scribe.steps import STEP_NAMES
from tests.acceptance.test_http import refusing_connections
from tests.conftest import auth_headers, serve
from tests.fakes.steps import behaviour, deterministic_pipeline

ITEM_KEYS = {
    "id",
    "recipient_name",
    "status",
    "position",
    "email_id",
    "error_message",
    "current_step",
    "created_at",
}
UTC_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
TEMPLATE = (
    "Dear {{name}}, I read your recent work on {{topic}} with great interest and would love "
    "to ask two short questions about it."
)


@pytest.fixture
def http_settings(make_settings: Callable[..., Settings]) -> Settings:
    """The app without its own consumer: tests drain one with deterministic steps."""
    return make_settings(scribe_worker=False, scribe_retry_base_seconds=0)


@pytest.fixture
async def api(http_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(http_settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield http


@pytest.fixture
def drain(pool: Pool, http_settings: Settings) -> Callable[[], Any]:
    async def run() -> None:
        await Consumer(
            pool, http_settings, email_handlers(deterministic_pipeline(), http_settings)
        ).run(drain=True)

    return run


async def _user(api: httpx.AsyncClient, email: str) -> dict[str, str]:
    headers = auth_headers(email)
    response = await api.post("/api/user/init", json={"display_name": "T"}, headers=headers)
    assert response.status_code == 201
    return headers


def _batch(*names: str, interest: str = "graph theory") -> dict[str, Any]:
    return {
        "items": [{"recipient_name": n, "recipient_interest": interest} for n in names],
        "email_template": TEMPLATE,
    }


async def test_batch_then_list_shows_pending_items_in_order_with_positions(
    api: httpx.AsyncClient,
) -> None:
    headers = await _user(api, "ada@uni.edu")
    response = await api.post("/api/queue/batch", json=_batch("Dr Ada", "Dr Bob"), headers=headers)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"queue_item_ids", "message"} and len(body["queue_item_ids"]) == 2

    listed = (await api.get("/api/queue/", headers=headers)).json()
    assert [item["id"] for item in listed] == body["queue_item_ids"]
    assert all(set(item) == ITEM_KEYS for item in listed)
    assert [item["position"] for item in listed] == [1, 2]
    assert [item["status"] for item in listed] == ["pending", "pending"]
    assert all(UTC_Z.match(item["created_at"]) for item in listed)
    other = await _user(api, "eve@uni.edu")
    assert (await api.get("/api/queue/", headers=other)).json() == []


async def test_drained_batch_completes_and_status_reports_success(
    api: httpx.AsyncClient, drain: Callable[[], Any]
) -> None:
    headers = await _user(api, "ada@uni.edu")
    ids = (await api.post("/api/queue/batch", json=_batch("Dr Ada"), headers=headers)).json()
    await drain()

    [item] = (await api.get("/api/queue/", headers=headers)).json()
    assert (item["status"], item["position"]) == ("completed", None)
    status = (await api.get(f"/api/email/status/{item['id']}", headers=headers)).json()
    assert status["status"] == "SUCCESS" and status["error"] is None
    assert item["id"] == ids["queue_item_ids"][0]
    assert status["result"]["email_id"] == item["email_id"]
    assert set(status["result"]["step_timings"]) == set(STEP_NAMES)
    email = await api.get(f"/api/email/{item['email_id']}", headers=headers)
    assert email.status_code == 200 and email.json()["recipient_name"] == "Dr Ada"
    profile = (await api.get("/api/user/profile", headers=headers)).json()
    assert profile["generation_count"] == 1


async def test_same_idempotency_key_returns_the_same_ids_without_duplicates(
    api: httpx.AsyncClient,
) -> None:
    headers = {**(await _user(api, "ada@uni.edu")), "Idempotency-Key": "batch-42"}
    first = await api.post("/api/queue/batch", json=_batch("Dr Ada", "Dr Bob"), headers=headers)
    again = await api.post("/api/queue/batch", json=_batch("Dr Ada", "Dr Bob"), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["queue_item_ids"] == again.json()["queue_item_ids"]
    assert len((await api.get("/api/queue/", headers=headers)).json()) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_batch(*[f"Dr {n:03}" for n in range(101)]), "items"),
        ({"items": [], "email_template": TEMPLATE}, "items"),
        (_batch("   "), "recipient_name"),
        (_batch("Dr Ada", interest="x" * 501), "recipient_interest"),
        ({"items": _batch("Dr Ada")["items"]}, "email_template"),
        ({**_batch("Dr Ada"), "email_template": "  \n "}, "email_template"),
        ({**_batch("Dr Ada"), "email_template": "Hi {{n}}!"}, "email_template"),
    ],
    ids=[
        "101-items",
        "no-items",
        "blank-name",
        "long-interest",
        "no-template",
        "blank-template",
        "too-short-template",
    ],
)
async def test_invalid_batch_is_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    headers = await _user(api, "ada@uni.edu")
    response = await api.post("/api/queue/batch", json=body, headers=headers)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"][0] == "body" and field in error["loc"]
    assert {"loc", "msg", "type"} == set(error)


async def test_cancel_pending_item_removes_it_and_others_cannot_cancel(
    api: httpx.AsyncClient, drain: Callable[[], Any], pool: Pool
) -> None:
    headers = await _user(api, "ada@uni.edu")
    keep, drop = (
        await api.post("/api/queue/batch", json=_batch("Dr Ada", "Dr Bob"), headers=headers)
    ).json()["queue_item_ids"]
    intruder = await _user(api, "eve@uni.edu")
    assert (await api.delete(f"/api/queue/{drop}", headers=intruder)).status_code == 404
    response = await api.delete(f"/api/queue/{drop}", headers=headers)
    assert response.status_code == 200 and "message" in response.json()

    listed = (await api.get("/api/queue/", headers=headers)).json()
    assert [(item["id"], item["position"]) for item in listed] == [(keep, 1)]
    await drain()
    assert await pool.fetchval("SELECT count(*) FROM emails") == 1
    finished = await api.delete(f"/api/queue/{keep}", headers=headers)
    # 400 naming the status, as the previous backend answered
    assert finished.status_code == 400
    assert finished.json() == {"detail": "Cannot cancel item with status 'completed'."}
    again = await api.delete(f"/api/queue/{drop}", headers=headers)
    assert again.status_code == 400 and "'cancelled'" in again.json()["detail"]
    missing = await api.delete(f"/api/queue/{uuid.uuid4()}", headers=headers)
    assert missing.status_code == 404


async def test_generate_is_202_and_status_moves_from_pending_to_failure(
    api: httpx.AsyncClient, drain: Callable[[], Any]
) -> None:
    headers = await _user(api, "ada@uni.edu")
    body = {
        "email_template": TEMPLATE,
        "recipient_name": "Dr Ada",
        "recipient_interest": behaviour(fail={"web_scraper": "permanent"}),
    }
    response = await api.post("/api/email/generate", json=body, headers=headers)
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    pending = (await api.get(f"/api/email/status/{task_id}", headers=headers)).json()
    assert pending == {"task_id": task_id, "status": "PENDING", "result": None, "error": None}

    await drain()
    failed = (await api.get(f"/api/email/status/{task_id}", headers=headers)).json()
    assert failed["status"] == "FAILURE" and "web_scraper" in failed["error"]
    other = await _user(api, "eve@uni.edu")
    assert (await api.get(f"/api/email/status/{task_id}", headers=other)).status_code == 404


async def test_generate_validates_its_body(api: httpx.AsyncClient) -> None:
    headers = await _user(api, "ada@uni.edu")
    response = await api.post(
        "/api/email/generate", json={"recipient_name": "Dr Ada"}, headers=headers
    )
    assert response.status_code == 422
    fields = {error["loc"][-1] for error in response.json()["detail"]}
    assert fields == {"email_template", "recipient_interest"}


async def test_stream_sends_items_as_they_change(
    api: httpx.AsyncClient, drain: Callable[[], Any]
) -> None:
    headers = await _user(api, "ada@uni.edu")
    [item_id] = (await api.post("/api/queue/batch", json=_batch("Dr Ada"), headers=headers)).json()[
        "queue_item_ids"
    ]
    seen: list[str] = []
    async with api.stream("GET", "/api/queue/stream", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        first = await asyncio.wait_for(_next_item(lines), 5)
        assert (first["id"], first["status"]) == (item_id, "pending")
        drain_task = asyncio.create_task(drain())
        while "completed" not in seen:
            event = await asyncio.wait_for(_next_item(lines), 5)
            assert set(event) == ITEM_KEYS
            seen.append(event["status"])
        await drain_task
    assert seen[-1] == "completed"


async def test_stream_sends_heartbeats_while_nothing_changes(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(scribe_worker=False, scribe_sse_heartbeat_seconds=0.2)
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as api:
        headers = await _user(api, "ada@uni.edu")
        async with api.stream("GET", "/api/queue/stream", headers=headers) as response:
            lines = response.aiter_lines()
            pings = 0
            async with asyncio.timeout(5):
                async for line in lines:
                    pings += line.startswith(": ping")
                    if pings == 2:
                        break
    assert pings == 2


async def _next_item(lines: AsyncIterator[str]) -> dict[str, Any]:
    event = None
    async for line in lines:
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == "item":
            parsed: dict[str, Any] = json.loads(line.split(":", 1)[1])
            return parsed
    raise AssertionError("stream ended")


async def test_only_failed_items_show_their_error_message(
    api: httpx.AsyncClient, pool: Pool
) -> None:
    """A retried (pending) or re-claimed (processing) item still carries its previous attempt's
    error in the row; the API must not show it, or a healthy item looks failed."""
    headers = await _user(api, "ada@uni.edu")
    created = await api.post(
        "/api/queue/batch", json=_batch("Dr Pending", "Dr Running", "Dr Failed"), headers=headers
    )
    pending_id, running_id, failed_id = created.json()["queue_item_ids"]
    await pool.execute(
        "UPDATE queue_items SET error_message = 'search timed out' WHERE id = ANY($1::uuid[])",
        [pending_id, running_id, failed_id],
    )
    await pool.execute(
        "UPDATE queue_items SET status = 'processing', locked_by = 'w1', "
        "lease_expires_at = now() + interval '1 minute', current_step = 'web_scraper' "
        "WHERE id = $1",
        uuid.UUID(running_id),
    )
    await pool.execute(
        "UPDATE queue_items SET status = 'failed', completed_at = now() WHERE id = $1",
        uuid.UUID(failed_id),
    )

    listed = {row["id"]: row for row in (await api.get("/api/queue/", headers=headers)).json()}
    assert listed[pending_id]["error_message"] is None
    assert listed[running_id]["error_message"] is None
    assert listed[failed_id]["error_message"] == "search timed out"

    async with api.stream("GET", "/api/queue/stream", headers=headers) as response:
        lines = response.aiter_lines()
        streamed: dict[str, str | None] = {}
        while len(streamed) < 3:
            event = await asyncio.wait_for(_next_item(lines), 5)
            streamed[event["id"]] = event["error_message"]
    assert streamed == {pending_id: None, running_id: None, failed_id: "search timed out"}

    running = (await api.get(f"/api/email/status/{running_id}", headers=headers)).json()
    assert running["status"] == "STARTED" and running["error"] is None
    pending = (await api.get(f"/api/email/status/{pending_id}", headers=headers)).json()
    assert pending["status"] == "PENDING" and pending["error"] is None
    failed = (await api.get(f"/api/email/status/{failed_id}", headers=headers)).json()
    assert failed["status"] == "FAILURE" and failed["error"] == "search timed out"
    await pool.execute(
        "UPDATE queue_items SET status = 'cancelled', completed_at = now() WHERE id = $1",
        uuid.UUID(pending_id),
    )
    cancelled = (await api.get(f"/api/email/status/{pending_id}", headers=headers)).json()
    assert cancelled["status"] == "FAILURE" and cancelled["error"] == "Cancelled."


async def test_stream_survives_a_database_outage_and_resumes(
    make_settings: Callable[..., Settings], pg_admin_dsn: str, database_url: str
) -> None:
    settings = make_settings(scribe_worker=False, scribe_listen=False, scribe_poll_seconds=0.1)
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as api:
        headers = await _user(api, "ada@uni.edu")
        created = await api.post("/api/queue/batch", json=_batch("Dr Ada"), headers=headers)
        [item_id] = created.json()["queue_item_ids"]
        async with api.stream("GET", "/api/queue/stream", headers=headers) as response:
            lines = response.aiter_lines()
            first = await asyncio.wait_for(_next_event(lines), 5)
            assert first == ("item", item_id)
            async with refusing_connections(pg_admin_dsn, database_url):
                assert (await api.get("/api/queue/", headers=headers)).status_code == 503
                # Hold the outage over five of the stream's polls (each refused); before, the
                # first refused poll cut the stream.
                await asyncio.sleep(0.5)
            assert (await api.delete(f"/api/queue/{item_id}", headers=headers)).is_success
            assert await asyncio.wait_for(_next_event(lines), 5) == ("removed", item_id)


async def _next_event(lines: AsyncIterator[str]) -> tuple[str, str]:
    """The next item/removed event: (name, item id)."""
    event = None
    async for line in lines:
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event in ("item", "removed"):
            return event, json.loads(line.split(":", 1)[1])["id"]
    raise AssertionError("stream ended")
