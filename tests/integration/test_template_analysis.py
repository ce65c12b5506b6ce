"""A batch's template is analysed once: through the real queue and the Anthropic wire fake, the
parser model is asked once per template however many items start at once, and another process
(or a retry) reuses the stored analysis instead of paying for it again."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from scribe.db import queue_items
from scribe.db.pool import Pool
from scribe.db.queue_items import NewItem
from scribe.db.template_analyses import TemplateAnalysisStore
from scribe.emails.handler import email_handlers
from scribe.queue.consumer import Consumer
from scribe.settings import Settings
from scribe.steps.pipeline import build_pipeline
from tests.fakes.fixtures import GENERAL_TEMPLATE, RESEARCH_TEMPLATE, fake_clients, fake_settings
from tests.fakes.services import FakeServices
from tests.queue_support import create_user

NO_BROWSER = "/nonexistent/chromium"  # a configured path that does not exist: no browser


def _parser_requests(fakes: FakeServices) -> list[Any]:
    """Requests to the fake Anthropic that asked for a template analysis."""
    return [
        r
        for r in fakes.of("anthropic")
        if "template_type" in json.dumps(r.body.get("output_config") or r.body.get("tools"))
    ]


async def _enqueue(pool: Pool, user: uuid.UUID, template: str, names: list[str]) -> list[uuid.UUID]:
    items = [NewItem(name, "quantum widgets") for name in names]
    return await queue_items.enqueue(pool, user, items, template, max_attempts=3)


async def _drain(
    pool: Pool, settings: Settings, fakes: FakeServices, *, stored: bool = False
) -> None:
    """One consumer process (its own clients, so its own in-process analyses) drains the queue;
    with ``stored``, its analyses are shared through the database, as ``scribe serve`` does."""
    store = TemplateAnalysisStore(pool) if stored else None
    async with fake_clients(settings, fakes, analysis_store=store) as clients:
        await Consumer(pool, settings, email_handlers(build_pipeline(clients), settings)).run(
            drain=True
        )


async def _emails(pool: Pool, user: uuid.UUID) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT recipient_name, metadata FROM emails WHERE user_id = $1 ORDER BY recipient_name",
        user,
    )
    return [dict(row) for row in rows]


@pytest.mark.slow
@pytest.mark.timeout(180)  # 100 items through every step: ~45 s on a loaded 2-core machine
async def test_a_100_item_batch_asks_the_parser_model_once(
    pool: Pool, database_url: str, fakes: FakeServices
) -> None:
    # Pages read without a browser: 100 renders one at a time would outlast the test's timeout,
    # and the browser has nothing to do with how often the template is analysed.
    settings = fake_settings(fakes, database_url=database_url, scribe_chromium_path=NO_BROWSER)
    assert settings.scribe_concurrency == 8  # 8 items start together and share the one call
    user = await create_user(pool)
    names = [f"Ada Lovelace{n}" for n in range(100)]
    await _enqueue(pool, user, GENERAL_TEMPLATE, names)

    await _drain(pool, settings, fakes)

    assert len(_parser_requests(fakes)) == 1
    emails = await _emails(pool, user)
    assert len(emails) == 100
    for email in emails:
        terms = email["metadata"]["search_terms"]
        assert terms and all(email["recipient_name"] in term for term in terms)
        assert email["metadata"]["template_type"] == "general"
    parser_usage = [
        u for e in emails for u in e["metadata"]["usage"] if u["purpose"] == "template_parser"
    ]
    assert len(parser_usage) == 1  # the one email whose item made the call carries its cost
    # The analysis sent the template only, never a recipient.
    [request] = _parser_requests(fakes)
    assert "Ada Lovelace" not in json.dumps(request.body)


async def test_two_templates_are_analysed_once_each(
    pool: Pool, database_url: str, fakes: FakeServices
) -> None:
    settings = fake_settings(fakes, database_url=database_url, scribe_arxiv_min_interval_seconds=0)
    user = await create_user(pool)
    await _enqueue(pool, user, GENERAL_TEMPLATE, [f"Grace Hopper{n}" for n in range(6)])
    await _enqueue(pool, user, RESEARCH_TEMPLATE, [f"Alan Turing{n}" for n in range(6)])

    await _drain(pool, settings, fakes)

    assert len(_parser_requests(fakes)) == 2
    types = {
        e["recipient_name"][:4]: e["metadata"]["template_type"] for e in await _emails(pool, user)
    }
    assert types == {"Grac": "general", "Alan": "research"}


async def test_another_process_reuses_the_stored_analysis(
    pool: Pool, database_url: str, fakes: FakeServices
) -> None:
    settings = fake_settings(fakes, database_url=database_url)
    user = await create_user(pool)
    await _enqueue(pool, user, GENERAL_TEMPLATE, ["Grace Hopper", "Alan Turing"])
    await _drain(pool, settings, fakes, stored=True)
    assert len(_parser_requests(fakes)) == 1
    assert await pool.fetchval("SELECT count(*) FROM template_analyses") == 1

    # A second process (fresh clients: nothing in memory) finds it in the database, for a
    # later batch of the same template as for a retried item.
    await _enqueue(pool, user, GENERAL_TEMPLATE, ["Barbara Liskov"])
    await _drain(pool, settings, fakes, stored=True)

    assert len(_parser_requests(fakes)) == 1
    [liskov] = [e for e in await _emails(pool, user) if e["recipient_name"] == "Barbara Liskov"]
    assert liskov["metadata"]["template_type"] == "general"
    assert "Barbara Liskov" in liskov["metadata"]["search_terms"][0]
    assert [u["purpose"] for u in liskov["metadata"]["usage"]] == ["email_composer"]


async def test_another_users_identical_template_is_analysed_for_them(
    pool: Pool, database_url: str, fakes: FakeServices
) -> None:
    settings = fake_settings(fakes, database_url=database_url)
    for _ in range(2):
        await _enqueue(pool, await create_user(pool), GENERAL_TEMPLATE, ["Grace Hopper"])

    await _drain(pool, settings, fakes, stored=True)

    assert len(_parser_requests(fakes)) == 2
