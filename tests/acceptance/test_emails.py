"""/api/email over HTTP: listing, paging, visibility, ownership, shapes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from scribe.db.pool import Pool
from tests.conftest import auth_headers
from tests.factories import add_email, assert_email_shape, init_user

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


async def test_list_is_newest_first_with_every_key(client: httpx.AsyncClient, pool: Pool) -> None:
    user_id, headers = await init_user(client, "ada@uni.edu")
    ids = [(await add_email(pool, user_id, T0 + timedelta(minutes=i))).id for i in range(3)]
    response = await client.get("/api/email/", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body] == [str(i) for i in reversed(ids)]
    for item in body:
        assert_email_shape(item)
        assert item["user_id"] == str(user_id)
    assert body[-1]["created_at"] == "2026-01-01T12:00:00.000000Z"
    assert body[0]["metadata"] == {"search_terms": ["Grace Hopper compilers"], "model": "offline"}


async def test_list_is_empty_for_a_new_user(client: httpx.AsyncClient) -> None:
    _, headers = await init_user(client, "new@uni.edu")
    response = await client.get("/api/email/", headers=headers)
    assert response.status_code == 200
    assert response.json() == []


async def test_limit_defaults_to_20_and_offset_pages(client: httpx.AsyncClient, pool: Pool) -> None:
    user_id, headers = await init_user(client, "ada@uni.edu")
    ids = [(await add_email(pool, user_id, T0 + timedelta(seconds=i))).id for i in range(25)]
    newest_first = [str(i) for i in reversed(ids)]

    default = (await client.get("/api/email/", headers=headers)).json()
    assert [item["id"] for item in default] == newest_first[:20]
    page = await client.get("/api/email/", params={"limit": 10, "offset": 20}, headers=headers)
    assert [item["id"] for item in page.json()] == newest_first[20:]
    everything = await client.get("/api/email/", params={"limit": 1000}, headers=headers)
    assert len(everything.json()) == 25


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 1001}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"include_discarded": "maybe"}, "include_discarded"),
        ({"offset": "99999999999999999999"}, "offset"),  # past int8: was a 500
    ],
)
async def test_bad_query_parameters_are_422(
    client: httpx.AsyncClient, params: dict[str, str | int], field: str
) -> None:
    _, headers = await init_user(client, "ada@uni.edu")
    response = await client.get("/api/email/", params=params, headers=headers)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert len(detail) == 1
    assert set(detail[0]) == {"loc", "msg", "type"}
    assert detail[0]["loc"] == ["query", field]


async def test_hidden_emails_only_with_include_discarded(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    user_id, headers = await init_user(client, "ada@uni.edu")
    shown = await add_email(pool, user_id, T0)
    hidden = await add_email(pool, user_id, T0 + timedelta(minutes=1), displayed=False)

    default = (await client.get("/api/email/", headers=headers)).json()
    assert [item["id"] for item in default] == [str(shown.id)]
    response = await client.get(
        "/api/email/", params={"include_discarded": "true"}, headers=headers
    )
    assert [item["id"] for item in response.json()] == [str(hidden.id), str(shown.id)]


async def test_list_shows_only_the_callers_emails(client: httpx.AsyncClient, pool: Pool) -> None:
    ada, _ = await init_user(client, "ada@uni.edu")
    bob, bob_headers = await init_user(client, "bob@uni.edu")
    await add_email(pool, ada, T0)
    bobs = await add_email(pool, bob, T0)
    response = await client.get("/api/email/", headers=bob_headers)
    assert [item["id"] for item in response.json()] == [str(bobs.id)]


async def test_get_one_email(client: httpx.AsyncClient, pool: Pool) -> None:
    user_id, headers = await init_user(client, "ada@uni.edu")
    email = await add_email(pool, user_id, T0, template_type="book", is_confident=False)
    response = await client.get(f"/api/email/{email.id}", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert_email_shape(body)
    assert body["id"] == str(email.id)
    assert body["template_type"] == "book" and body["is_confident"] is False


async def test_other_users_email_is_404_for_get_and_patch(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    ada, _ = await init_user(client, "ada@uni.edu")
    _, bob_headers = await init_user(client, "bob@uni.edu")
    email = await add_email(pool, ada, T0)
    got = await client.get(f"/api/email/{email.id}", headers=bob_headers)
    assert got.status_code == 404
    assert got.json() == {"detail": "Email not found."}
    patched = await client.patch(
        f"/api/email/{email.id}", json={"displayed": False}, headers=bob_headers
    )
    assert patched.status_code == 404
    still = await client.get(f"/api/email/{email.id}", headers=auth_headers("ada@uni.edu"))
    assert still.json()["displayed"] is True


async def test_missing_email_is_404(client: httpx.AsyncClient) -> None:
    _, headers = await init_user(client, "ada@uni.edu")
    response = await client.get(f"/api/email/{uuid.uuid4()}", headers=headers)
    assert response.status_code == 404


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"])
async def test_malformed_email_id_is_400(client: httpx.AsyncClient, bad_id: str) -> None:
    _, headers = await init_user(client, "ada@uni.edu")
    for response in (
        await client.get(f"/api/email/{bad_id}", headers=headers),
        await client.patch(f"/api/email/{bad_id}", json={"displayed": True}, headers=headers),
    ):
        assert response.status_code == 400
        assert "not a UUID" in response.json()["detail"]


async def test_patch_hides_and_shows_an_email(client: httpx.AsyncClient, pool: Pool) -> None:
    user_id, headers = await init_user(client, "ada@uni.edu")
    email = await add_email(pool, user_id, T0)
    hidden = await client.patch(
        f"/api/email/{email.id}", json={"displayed": False}, headers=headers
    )
    assert hidden.status_code == 200
    assert_email_shape(hidden.json())
    assert hidden.json()["displayed"] is False
    assert (await client.get("/api/email/", headers=headers)).json() == []
    shown = await client.patch(f"/api/email/{email.id}", json={"displayed": True}, headers=headers)
    assert shown.json()["displayed"] is True


@pytest.mark.parametrize(
    "body", [{}, {"displayed": "sometimes"}, {"displayed": True, "extra": 1}, [], None]
)
async def test_patch_with_an_invalid_body_is_422(
    client: httpx.AsyncClient, pool: Pool, body: object
) -> None:
    user_id, headers = await init_user(client, "ada@uni.edu")
    email = await add_email(pool, user_id, T0)
    response = await client.patch(f"/api/email/{email.id}", json=body, headers=headers)
    assert response.status_code == 422
    for error in response.json()["detail"]:
        assert set(error) == {"loc", "msg", "type"}
        assert error["loc"][0] == "body"


async def test_email_routes_before_init_are_403(client: httpx.AsyncClient) -> None:
    headers = auth_headers("new@uni.edu")
    for method, path in [
        ("GET", "/api/email/"),
        ("GET", f"/api/email/{uuid.uuid4()}"),
        ("PATCH", f"/api/email/{uuid.uuid4()}"),
    ]:
        response = await client.request(method, path, json={"displayed": True}, headers=headers)
        assert response.status_code == 403
        assert "POST /api/user/init" in response.json()["detail"]
