"""The earlier backend's template contract (not blank, 10-10,000 characters) on POST
/api/queue/batch and /api/email/generate: the frontend only checks "not blank", and a short
template must go through the real pipeline to an email."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from scribe.db.pool import Pool
from scribe.emails.handler import email_handlers
from scribe.queue.consumer import Consumer
from scribe.settings import Settings
from scribe.steps.pipeline import build_pipeline
from tests.conftest import auth_headers, serve
from tests.fakes.fixtures import fake_clients, fake_settings
from tests.fakes.services import FakeServices

HEADERS = auth_headers("student@uni.edu")
RECIPIENT = {"recipient_name": "Prof. Jane Roe", "recipient_interest": "quantum widgets"}


@pytest.mark.parametrize("offline", [True, False], ids=["offline", "models"])
async def test_ten_character_templates_are_accepted_and_become_emails(
    make_settings: Callable[..., Settings], fakes: FakeServices, pool: Pool, offline: bool
) -> None:
    keys = {"anthropic_api_key": None, "exa_api_key": None} if offline else {}
    provider = fake_settings(fakes, **keys).model_dump(exclude_unset=True)
    settings = make_settings(**{**provider, **keys, "scribe_worker": False})
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as api:
        assert (await api.post("/api/user/init", json={}, headers=HEADERS)).status_code == 201
        batch = {"items": [RECIPIENT], "email_template": "Hi {{name}}"}
        queued = await api.post("/api/queue/batch", json=batch, headers=HEADERS)
        assert queued.status_code == 201, queued.text
        single = await api.post(
            "/api/email/generate",
            json={**RECIPIENT, "email_template": "Hello prof"},
            headers=HEADERS,
        )
        assert single.status_code == 202, single.text

        async with fake_clients(settings, fakes) as clients:
            await Consumer(pool, settings, email_handlers(build_pipeline(clients), settings)).run(
                drain=True
            )
        items = (await api.get("/api/queue/", headers=HEADERS)).json()
        assert [item["status"] for item in items] == ["completed", "completed"]
        for item in items:
            email = (await api.get(f"/api/email/{item['email_id']}", headers=HEADERS)).json()
            assert email["email_message"] and "{{" not in email["email_message"]


@pytest.mark.parametrize(
    "template", ["Hi {{n}}!", "         \n", ""], ids=["9-chars", "blank", "empty"]
)
async def test_shorter_or_blank_templates_are_422_on_batch_and_generate(
    client: httpx.AsyncClient, template: str
) -> None:
    assert (await client.post("/api/user/init", json={}, headers=HEADERS)).status_code == 201
    batch = await client.post(
        "/api/queue/batch",
        json={"items": [RECIPIENT], "email_template": template},
        headers=HEADERS,
    )
    single = await client.post(
        "/api/email/generate", json={**RECIPIENT, "email_template": template}, headers=HEADERS
    )
    for response in (batch, single):
        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "email_template"]
