"""Bodies above INLINE_BODY_BYTES are decoded in a worker thread: same answers as inline ones."""

from __future__ import annotations

import json

import httpx

from scribe.api.common import INLINE_BODY_BYTES
from tests.conftest import auth_headers

HEADERS = {**auth_headers("student@uni.edu"), "Content-Type": "application/json"}


async def test_a_large_valid_batch_is_queued(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/user/init", json={}, headers=HEADERS)).status_code == 201
    template = "Dear {{name}}, " + "caf\u00e9 " * 1_990  # ASCII-escaped by json.dumps: ~60 kB
    items = [{"recipient_name": "R" * 255, "recipient_interest": "i" * 500} for _ in range(100)]
    body = json.dumps({"email_template": template[:10_000], "items": items})
    assert len(body) > INLINE_BODY_BYTES
    response = await client.post("/api/queue/batch", content=body, headers=HEADERS)
    assert response.status_code == 201, response.text
    assert len(response.json()["queue_item_ids"]) == 100


async def test_a_large_slow_to_parse_body_is_a_422(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/user/init", json={}, headers=HEADERS)).status_code == 201
    body = "[" + ",".join(["1e308"] * 150_000) + "]"  # ~900 kB of floats: slow to parse
    response = await client.post("/api/queue/batch", content=body, headers=HEADERS)
    assert response.status_code == 422
    broken = '{"items": [' + "1," * 400_000
    response = await client.post("/api/queue/batch", content=broken, headers=HEADERS)
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "json_invalid"
