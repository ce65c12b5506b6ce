"""Rolling restart: a checkpoint written by another release is resumed by this one through the
real queue, without paying again for the steps it holds (counted at the fake providers).

The old release's checkpoint is ``tests/fakes/checkpoint_v1.json`` (its runner's document after
template_parser and web_scraper); the newer release's is simulated by fields this one does not
know.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from scribe.db import queue_items
from scribe.db.pool import Pool
from scribe.db.queue_items import NewItem
from scribe.emails.handler import email_handlers
from scribe.queue.consumer import Consumer
from scribe.settings import Settings
from scribe.steps import STEP_NAMES
from scribe.steps.pipeline import build_pipeline, dump_checkpoint, load_checkpoint
from tests.fakes.fixtures import RESEARCH_TEMPLATE, fake_clients, fake_settings, item
from tests.fakes.services import FakeServices
from tests.queue_support import create_user, item_rows

V1_PATH = Path(__file__).resolve().parent.parent / "fakes" / "checkpoint_v1.json"


async def _item_with_checkpoint(pool: Pool, checkpoint: dict[str, Any]) -> uuid.UUID:
    """A pending item whose first two steps are done, as the releasing worker left it."""
    user = await create_user(pool)
    recipient = NewItem("Prof. Jane Roe", "quantum widgets")
    [item_id] = await queue_items.enqueue(
        pool, user, [recipient], RESEARCH_TEMPLATE, max_attempts=3
    )
    await pool.execute(
        "UPDATE queue_items SET checkpoint = $2, current_step = 'arxiv_helper' WHERE id = $1",
        item_id,
        checkpoint,
    )
    return item_id


async def _drain(pool: Pool, settings: Settings, fakes: FakeServices) -> None:
    async with fake_clients(settings, fakes) as clients:
        await Consumer(pool, settings, email_handlers(build_pipeline(clients), settings)).run(
            drain=True
        )


async def _email(pool: Pool, item_id: uuid.UUID) -> dict[str, Any]:
    row = await pool.fetchrow("SELECT * FROM emails WHERE queue_item_id = $1", item_id)
    assert row is not None
    return dict(row)


async def test_old_release_checkpoint_is_resumed_without_rerunning_its_steps(
    pool: Pool, database_url: str, fakes: FakeServices
) -> None:
    old: dict[str, Any] = json.loads(V1_PATH.read_text())
    item_id = await _item_with_checkpoint(pool, old)
    settings = fake_settings(fakes, database_url=database_url)
    await _drain(pool, settings, fakes)

    row = (await item_rows(pool, [item_id]))[item_id]
    assert (row["status"], row["attempts"]) == ("completed", 0)
    # Only the composer called the LLM; search was not paid for again; arXiv ran once.
    assert len(fakes.of("anthropic")) == 1 and fakes.of("exa") == []
    assert len(fakes.of("arxiv")) == 1
    metadata = (await _email(pool, item_id))["metadata"]
    assert metadata["search_terms"] == old["data"]["search_terms"]
    assert metadata["scraped_urls"] == old["data"]["scraped_urls"]
    assert set(metadata["step_timings"]) == set(STEP_NAMES)
    assert [u["purpose"] for u in metadata["usage"]] == ["template_parser", "email_composer"]


async def test_newer_release_checkpoint_with_unknown_fields_is_resumed(
    pool: Pool, database_url: str, fakes: FakeServices
) -> None:
    state, done = load_checkpoint(json.loads(V1_PATH.read_text()), item().inputs)
    newer = dump_checkpoint(state, done)
    newer["version"] = 3
    newer["written_by"] = "scribe 9.0"
    newer["outputs"]["template_parser"]["tone"] = "warm"
    item_id = await _item_with_checkpoint(pool, newer)
    settings = fake_settings(fakes, database_url=database_url)
    await _drain(pool, settings, fakes)

    row = (await item_rows(pool, [item_id]))[item_id]
    assert row["status"] == "completed"
    assert len(fakes.of("anthropic")) == 1 and fakes.of("exa") == []


async def test_an_invalid_later_output_reruns_only_from_that_step(
    pool: Pool, database_url: str, fakes: FakeServices
) -> None:
    old: dict[str, Any] = json.loads(V1_PATH.read_text())
    old["data"]["scraping_metadata"] = {"search": "a search engine this release does not know"}
    item_id = await _item_with_checkpoint(pool, old)
    settings = fake_settings(fakes, database_url=database_url)
    await _drain(pool, settings, fakes)

    assert (await item_rows(pool, [item_id]))[item_id]["status"] == "completed"
    # template_parser kept (one LLM call: the composer's); web_scraper ran again (two queries).
    assert len(fakes.of("anthropic")) == 1 and len(fakes.of("exa")) == 2
