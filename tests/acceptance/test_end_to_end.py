"""The whole product over HTTP: a batch is queued, a worker with the real pipeline drains it
against the fake Anthropic, Exa, arXiv and web site, and the emails come back through the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from scribe.db.pool import Pool
from scribe.emails.handler import email_handlers
from scribe.queue.consumer import Consumer
from scribe.settings import Settings
from scribe.steps import STEP_NAMES
from scribe.steps.pipeline import build_pipeline
from tests.conftest import auth_headers, serve
from tests.fakes.fixtures import (
    GENERAL_TEMPLATE,
    RESEARCH_TEMPLATE,
    fake_clients,
    fake_policy,
    fake_settings,
)
from tests.fakes.services import ARXIV_TITLE, EXA_FACT, FakeServices

HEADERS = auth_headers("student@uni.edu")


def _settings(
    make_settings: Callable[..., Settings], fakes: FakeServices, **extra: Any
) -> Settings:
    provider = fake_settings(fakes, **extra).model_dump(exclude_unset=True)
    return make_settings(**{**provider, **extra, "scribe_worker": False})


async def _submit_drain_and_read(
    settings: Settings, fakes: FakeServices, pool: Pool, batch: dict[str, Any]
) -> list[dict[str, Any]]:
    """POST the batch, drain one worker running the real pipeline, GET each email back."""
    async with (
        serve(settings, address_policy=fake_policy(fakes.port)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as api,
    ):
        assert (await api.post("/api/user/init", json={}, headers=HEADERS)).status_code == 201
        queued = await api.post("/api/queue/batch", json=batch, headers=HEADERS)
        assert queued.status_code == 201, queued.text
        async with fake_clients(settings, fakes) as clients:
            await Consumer(pool, settings, email_handlers(build_pipeline(clients), settings)).run(
                drain=True
            )
        items = (await api.get("/api/queue/", headers=HEADERS)).json()
        assert [item["status"] for item in items] == ["completed"] * len(batch["items"])
        emails = []
        for item in items:
            response = await api.get(f"/api/email/{item['email_id']}", headers=HEADERS)
            assert response.status_code == 200
            emails.append(response.json())
        profile = (await api.get("/api/user/profile", headers=HEADERS)).json()
        assert profile["generation_count"] == len(batch["items"])
        return emails


async def test_batch_flows_through_all_four_steps_with_facts_from_search_and_arxiv(
    make_settings: Callable[..., Settings], fakes: FakeServices, pool: Pool
) -> None:
    settings = _settings(make_settings, fakes)
    batch = {
        "email_template": RESEARCH_TEMPLATE,
        "items": [
            {"recipient_name": "Prof. Jane Roe", "recipient_interest": "quantum widgets"},
            {"recipient_name": "Dr. Jane Roe", "recipient_interest": "widget entanglement"},
        ],
    }
    emails = await _submit_drain_and_read(settings, fakes, pool, batch)

    for email in emails:
        metadata = email["metadata"]
        assert email["template_type"] == "research"
        assert "{{" not in email["email_message"]
        assert set(metadata["step_timings"]) == set(STEP_NAMES)
        assert metadata["search_terms"] and metadata["scraped_urls"]
        assert metadata["arxiv_papers"][0]["title"] == ARXIV_TITLE
        assert metadata["model"] == "anthropic:claude-sonnet-4-6"
    # The batch's template was analysed once: one email carries that call's usage.
    purposes = sorted(u["purpose"] for email in emails for u in email["metadata"]["usage"])
    assert purposes == ["email_composer", "email_composer", "template_parser"]
    composer_prompts = [
        r.body["messages"][0]["content"] for r in fakes.of("anthropic") if EXA_FACT in str(r.body)
    ]
    assert composer_prompts and all(ARXIV_TITLE in prompt for prompt in composer_prompts)


async def test_without_keys_the_flow_produces_emails_labelled_offline(
    make_settings: Callable[..., Settings], fakes: FakeServices, pool: Pool
) -> None:
    settings = _settings(
        make_settings, fakes, anthropic_api_key=None, openai_api_key=None, exa_api_key=None
    )
    batch = {
        "email_template": GENERAL_TEMPLATE,
        "items": [{"recipient_name": "Prof. Jane Roe", "recipient_interest": "widgets"}],
    }
    [email] = await _submit_drain_and_read(settings, fakes, pool, batch)
    assert email["metadata"]["model"] == "offline"
    assert email["is_confident"] is False
    assert "Jane Roe" in email["email_message"] and "{{" not in email["email_message"]
    assert fakes.of("anthropic") == [] and fakes.of("exa") == []
