"""/api/user over HTTP."""

from __future__ import annotations

import re
import uuid

import httpx

from tests.conftest import auth_headers

PROFILE_KEYS = {
    "id",
    "email",
    "display_name",
    "generation_count",
    "template_count",
    "onboarded",
    "email_template",
    "created_at",
}
UTC_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


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
