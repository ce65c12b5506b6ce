"""GET /api/templates/ and /api/templates/{id} over HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from scribe.db.pool import Pool
from tests.conftest import auth_headers
from tests.factories import add_template, assert_template_shape, init_user

T0 = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


async def test_list_is_newest_first_and_only_the_callers(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    ada, headers = await init_user(client, "ada@uni.edu")
    bob, _ = await init_user(client, "bob@uni.edu")
    ids = [(await add_template(pool, ada, T0 + timedelta(hours=i))).id for i in range(3)]
    await add_template(pool, bob, T0)
    response = await client.get("/api/templates/", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body] == [str(i) for i in reversed(ids)]
    for item in body:
        assert_template_shape(item)
    assert body[-1]["created_at"] == "2026-03-01T08:30:00.000000Z"


async def test_list_is_empty_for_a_new_user(client: httpx.AsyncClient) -> None:
    _, headers = await init_user(client, "ada@uni.edu")
    assert (await client.get("/api/templates/", headers=headers)).json() == []


async def test_get_one_template(client: httpx.AsyncClient, pool: Pool) -> None:
    user_id, headers = await init_user(client, "ada@uni.edu")
    template = await add_template(pool, user_id, T0)
    response = await client.get(f"/api/templates/{template.id}", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert_template_shape(body)
    assert body["template_text"] == template.template_text
    assert body["user_id"] == str(user_id)


async def test_other_users_or_missing_template_is_404(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    ada, _ = await init_user(client, "ada@uni.edu")
    _, bob_headers = await init_user(client, "bob@uni.edu")
    template = await add_template(pool, ada, T0)
    for template_id in (template.id, uuid.uuid4()):
        response = await client.get(f"/api/templates/{template_id}", headers=bob_headers)
        assert response.status_code == 404
        assert response.json() == {"detail": "Template not found."}


async def test_malformed_template_id_is_400(client: httpx.AsyncClient) -> None:
    _, headers = await init_user(client, "ada@uni.edu")
    response = await client.get("/api/templates/not-a-uuid", headers=headers)
    assert response.status_code == 400
    assert set(response.json()) == {"detail"}


async def test_template_routes_before_init_are_403(client: httpx.AsyncClient) -> None:
    headers = auth_headers("new@uni.edu")
    for path in ("/api/templates/", f"/api/templates/{uuid.uuid4()}"):
        response = await client.get(path, headers=headers)
        assert response.status_code == 403


async def test_template_routes_without_a_token_are_401(client: httpx.AsyncClient) -> None:
    for path in ("/api/templates/", f"/api/templates/{uuid.uuid4()}"):
        assert (await client.get(path)).status_code == 401
