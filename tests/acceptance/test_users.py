"""/api/user over HTTP."""

from __future__ import annotations

import logging
import re
import uuid

import httpx
import pytest

from scribe.api.users import UNUSABLE_EMAIL
from scribe.db.pool import Pool
from scribe.http.request_ids import RequestIdFilter
from tests.conftest import auth_headers
from tests.factories import PROFILE_KEYS, UTC_Z


async def test_init_creates_profile_then_is_idempotent(client: httpx.AsyncClient) -> None:
    headers = auth_headers("ada@uni.edu")
    first = await client.post("/api/user/init", json={"display_name": "Ada"}, headers=headers)
    assert first.status_code == 201
    body = first.json()
    assert set(body) == PROFILE_KEYS
    assert uuid.UUID(body["id"])
    assert UTC_Z.match(body["created_at"])
    assert body["display_name"] == "Ada"
    assert body["generation_count"] == 0 and body["onboarded"] is False

    second = await client.post("/api/user/init", json={"display_name": "Other"}, headers=headers)
    assert second.status_code == 200
    assert second.json() == body


async def test_profile_before_init_is_403(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/user/profile", headers=auth_headers("new@uni.edu"))
    assert response.status_code == 403
    assert response.json() == {
        "detail": "User profile not initialized. Please call POST /api/user/init first."
    }


async def test_same_email_under_new_sub_is_409(client: httpx.AsyncClient) -> None:
    await client.post("/api/user/init", json={}, headers=auth_headers("dup@uni.edu"))
    other = auth_headers("dup@uni.edu", uuid.uuid4())
    response = await client.post("/api/user/init", json={}, headers=other)
    assert response.status_code == 409
    assert "already registered" in response.json()["detail"]


async def test_profile_after_init_has_every_key(client: httpx.AsyncClient) -> None:
    headers = auth_headers("Grace@Uni.edu")
    created = await client.post(
        "/api/user/init", json={"display_name": "  Grace "}, headers=headers
    )
    response = await client.get("/api/user/profile", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body == created.json()
    assert set(body) == PROFILE_KEYS
    assert body["email"] == "grace@uni.edu"
    assert body["display_name"] == "Grace"
    assert body["email_template"] is None and body["template_count"] == 0
    assert UTC_Z.match(body["created_at"])


async def test_init_without_display_name_stores_null(client: httpx.AsyncClient) -> None:
    headers = auth_headers("anon@uni.edu")
    for body in ({}, {"display_name": None}, {"display_name": "   "}):
        response = await client.post("/api/user/init", json=body, headers=headers)
        assert response.json()["display_name"] is None


@pytest.mark.parametrize(
    "body", [{"display_name": "x" * 256}, {"display_name": 5}, {"name": "Ada"}, [], "text"]
)
async def test_init_with_an_invalid_body_is_422(client: httpx.AsyncClient, body: object) -> None:
    response = await client.post("/api/user/init", json=body, headers=auth_headers("a@uni.edu"))
    assert response.status_code == 422
    for error in response.json()["detail"]:
        assert set(error) == {"loc", "msg", "type"}
    profile = await client.get("/api/user/profile", headers=auth_headers("a@uni.edu"))
    assert profile.status_code == 403


async def test_onboarding_marks_the_profile(client: httpx.AsyncClient) -> None:
    headers = auth_headers("ada@uni.edu")
    await client.post("/api/user/init", json={}, headers=headers)
    response = await client.patch("/api/user/onboarding", headers=headers)
    assert response.status_code == 200
    assert set(response.json()) == PROFILE_KEYS
    assert response.json()["onboarded"] is True
    again = await client.patch("/api/user/onboarding", headers=headers)
    assert again.json()["onboarded"] is True
    assert (await client.get("/api/user/profile", headers=headers)).json()["onboarded"] is True


async def test_template_is_stored_verbatim_with_surrounding_whitespace(
    client: httpx.AsyncClient,
) -> None:
    """The generate page reloads its textarea from the profile: stripping ate the trailing
    newline the user had just typed."""
    headers = auth_headers("ada@uni.edu")
    await client.post("/api/user/init", json={}, headers=headers)
    text = "  Dear {{name}},\n\nI enjoyed your paper on {{topic}}.\n"
    response = await client.patch("/api/user/template", json={"template": text}, headers=headers)
    assert response.status_code == 200
    assert response.json()["email_template"] == text
    profile = await client.get("/api/user/profile", headers=headers)
    assert profile.json()["email_template"] == text


@pytest.mark.parametrize(
    "body",
    [{"template": ""}, {"template": "   \n"}, {"template": "x" * 10_001}, {}, {"template": 3}],
)
async def test_invalid_template_is_422(client: httpx.AsyncClient, body: object) -> None:
    headers = auth_headers("ada@uni.edu")
    await client.post("/api/user/init", json={}, headers=headers)
    response = await client.patch("/api/user/template", json=body, headers=headers)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail and all(set(error) == {"loc", "msg", "type"} for error in detail)
    assert detail[0]["loc"][0] == "body"


async def test_template_of_10000_characters_is_accepted(client: httpx.AsyncClient) -> None:
    headers = auth_headers("ada@uni.edu")
    await client.post("/api/user/init", json={}, headers=headers)
    response = await client.patch(
        "/api/user/template", json={"template": "x" * 10_000}, headers=headers
    )
    assert response.status_code == 200


async def test_user_routes_before_init_are_403(client: httpx.AsyncClient) -> None:
    headers = auth_headers("new@uni.edu")
    for method, path, body in [
        ("GET", "/api/user/profile", None),
        ("PATCH", "/api/user/onboarding", None),
        ("PATCH", "/api/user/template", {"template": "Hi"}),
    ]:
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == 403
        assert response.json() == {
            "detail": "User profile not initialized. Please call POST /api/user/init first."
        }


async def test_user_routes_without_a_token_are_401(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("POST", "/api/user/init"),
        ("GET", "/api/user/profile"),
        ("PATCH", "/api/user/onboarding"),
        ("PATCH", "/api/user/template"),
    ]:
        response = await client.request(method, path, json={})
        assert response.status_code == 401
        assert set(response.json()) == {"detail"}


@pytest.mark.parametrize("email", ["jörg@münchen.de", "root@localhost", "a..b@uni.edu"])
async def test_init_refuses_an_address_the_frontend_cannot_parse(
    client: httpx.AsyncClient, pool: Pool, email: str
) -> None:
    # The frontend's profile schema (zod's email()) would reject the answer, and every page
    # showing the profile (the admin page's user list too) would fail with "schema mismatch".
    response = await client.post("/api/user/init", json={}, headers=auth_headers(email))
    assert response.status_code == 400
    assert response.json() == {"detail": UNUSABLE_EMAIL}
    assert await pool.fetchval("SELECT count(*) FROM users") == 0


async def test_each_request_logs_its_own_server_id_beside_the_clients(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="scribe.api.users")
    caplog.handler.addFilter(RequestIdFilter())
    headers = {**auth_headers("root@localhost"), "X-Request-ID": "page-load-1"}
    for _ in range(2):
        response = await client.post("/api/user/init", json={}, headers=headers)
        assert response.headers["x-request-id"] == "page-load-1"
    tagged = [
        getattr(record, "request", "")
        for record in caplog.records
        if record.getMessage().startswith("profile refused")
    ]
    assert len(tagged) == 2 and len(set(tagged)) == 2, tagged
    for tag in tagged:
        assert re.fullmatch(r" \[request [0-9a-f]{32} client page-load-1\]", tag), tag
