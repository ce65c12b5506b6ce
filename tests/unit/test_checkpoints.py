"""Versioned checkpoints: version 2 round trips without the inputs, version 1 (the release before
versioned checkpoints) is upgraded, unknown fields are kept, and an output that no longer
validates is run again from that step on. ``load_checkpoint`` never raises.

``tests/fakes/checkpoint_v1.json`` is what the previous release's runner stored after
template_parser and web_scraper (its first two steps run against the fakes).
"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from scribe.steps.models import (
    ArxivMetadata,
    Citation,
    GenerationMetadata,
    PaperSearch,
    ParsedTemplate,
    ScrapingMetadata,
    WebResearch,
    WrittenEmail,
)
from scribe.steps.pipeline import (
    CHECKPOINT_VERSION,
    EmailInputs,
    EmailState,
    dump_checkpoint,
    email_metadata,
    email_result,
    load_checkpoint,
    start_state,
)

V1_PATH = Path(__file__).resolve().parent.parent / "fakes" / "checkpoint_v1.json"
TWO_STEPS = ["template_parser", "web_scraper"]
TEMPLATE = "Dear {{professor_name}}, I read your paper {{paper_title}} with great interest."


def inputs() -> EmailInputs:
    return EmailInputs(
        queue_item_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        recipient_name="Prof. Jane Roe",
        recipient_interest="quantum widgets",
        email_template=TEMPLATE,
    )


def v1() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(V1_PATH.read_text())
    return doc


def two_steps_done() -> EmailState:
    parsed = ParsedTemplate(
        template_type="research",
        search_terms=["Jane Roe quantum widgets"],
        placeholders=["{{professor_name}}", "{{paper_title}}"],
    )
    citation = Citation(url="https://uni.example/roe", title="Profile", query="background")
    research = WebResearch(
        scraped_content="Jane Roe builds widgets.",
        scraped_urls=["https://uni.example/roe"],
        scraping_metadata=ScrapingMetadata(
            search="exa",
            queries={"background": "Jane Roe", "publications": "Jane Roe papers"},
            citations=[citation],
            pages=[],
            browser="unavailable (httpx only)",
        ),
    )
    return start_state(inputs()).model_copy(
        update={
            "template_parser": parsed,
            "web_scraper": research,
            "step_timings": {"template_parser": 0.5, "web_scraper": 1.25},
        }
    )


def test_version_2_round_trips_without_the_inputs() -> None:
    state = two_steps_done()
    doc = dump_checkpoint(state, TWO_STEPS)
    assert doc["version"] == CHECKPOINT_VERSION == 2
    assert "inputs" not in doc and "{{paper_title}} with great" not in json.dumps(doc)
    loaded, done = load_checkpoint(json.loads(json.dumps(doc)), state.inputs)
    assert done == TWO_STEPS
    assert loaded == state


def test_no_checkpoint_starts_fresh() -> None:
    state, done = load_checkpoint(None, inputs())
    assert done == [] and state.template_parser is None and state.step_timings == {}


def test_version_1_after_two_steps_is_upgraded() -> None:
    state, done = load_checkpoint(v1(), inputs())
    assert done == TWO_STEPS
    old = v1()["data"]
    parsed = state.parsed()
    assert parsed.template_type == old["template_type"] == "research"
    assert parsed.search_terms == old["search_terms"]
    assert parsed.placeholders == old["placeholders"]
    assert [u.purpose for u in parsed.usage] == ["template_parser"]
    research = state.web_scraper
    assert research is not None
    assert research.scraped_content == old["scraped_content"]
    assert research.scraped_urls == old["scraped_urls"]
    assert research.scraping_metadata.model_dump(exclude_none=True) == old["scraping_metadata"]
    assert state.arxiv_helper is None and state.email_composer is None
    assert state.step_timings == old["step_timings"]
    # The inputs come from the queue row, not from the old checkpoint's copy of them.
    assert state.inputs.email_template == TEMPLATE


def test_version_1_named_as_such_is_upgraded_too() -> None:
    _, done = load_checkpoint({"version": 1, **v1()}, inputs())
    assert done == TWO_STEPS


def test_version_1_with_a_field_from_a_newer_release_is_resumed() -> None:
    doc = v1()
    doc["data"]["tone"] = "warm"  # a field this release does not know
    _, done = load_checkpoint(doc, inputs())
    assert done == TWO_STEPS


def test_unknown_fields_are_kept_not_a_reason_to_start_over() -> None:
    doc = dump_checkpoint(two_steps_done(), TWO_STEPS)
    doc["written_by"] = "scribe 9.0"  # top level: ignored
    doc["outputs"]["web_scraper"]["language"] = "en"  # in an output: kept
    doc["outputs"]["web_scraper"]["scraping_metadata"]["engine"] = "exa-2"
    state, done = load_checkpoint(doc, inputs())
    assert done == TWO_STEPS
    again = dump_checkpoint(state, done)["outputs"]["web_scraper"]
    assert again["language"] == "en" and again["scraping_metadata"]["engine"] == "exa-2"


def test_a_newer_version_is_read_as_far_as_it_validates() -> None:
    doc = dump_checkpoint(two_steps_done(), TWO_STEPS)
    doc["version"] = CHECKPOINT_VERSION + 1
    _, done = load_checkpoint(doc, inputs())
    assert done == TWO_STEPS


def test_an_output_that_no_longer_validates_is_run_again_from_there() -> None:
    doc = dump_checkpoint(two_steps_done(), TWO_STEPS)
    del doc["outputs"]["web_scraper"]["scraping_metadata"]  # required since this version
    state, done = load_checkpoint(doc, inputs())
    assert done == ["template_parser"]
    assert state.web_scraper is None
    assert state.step_timings == {"template_parser": 0.5}  # the redone step's is dropped


def test_a_version_1_output_that_no_longer_validates_is_run_again_from_there() -> None:
    doc = v1()
    doc["data"]["scraping_metadata"] = {"search": "bing"}  # not a value this release knows
    state, done = load_checkpoint(doc, inputs())
    assert done == ["template_parser"] and state.web_scraper is None


def test_a_completed_step_without_its_output_is_run_again() -> None:
    doc = dump_checkpoint(two_steps_done(), TWO_STEPS)
    del doc["outputs"]["template_parser"]
    _, done = load_checkpoint(doc, inputs())
    assert done == []


@pytest.mark.parametrize(
    "doc",
    [
        {"completed": ["x"], "data": {"bogus": 1}},
        {"completed": "template_parser", "data": []},
        {"version": 2, "completed": None, "outputs": None},
        {"version": "two", "completed": ["template_parser"], "outputs": {"template_parser": 7}},
        {"version": 2, "completed": TWO_STEPS, "outputs": {}, "step_timings": "fast"},
        {"data": None},
    ],
)
def test_a_malformed_checkpoint_starts_over_without_raising(doc: dict[str, Any]) -> None:
    state, done = load_checkpoint(doc, inputs())
    assert done == [] and state.template_parser is None


def test_a_checkpoint_that_is_not_an_object_starts_over() -> None:
    state, done = load_checkpoint(["template_parser"], inputs())  # type: ignore[arg-type]
    assert done == [] and state.template_parser is None


def test_step_timings_that_are_not_numbers_are_dropped() -> None:
    doc = dump_checkpoint(two_steps_done(), TWO_STEPS)
    doc["step_timings"] = {"template_parser": "slow", "web_scraper": 2, "other": 1.0}
    state, _ = load_checkpoint(copy.deepcopy(doc), inputs())
    assert state.step_timings == {"web_scraper": 2.0}


def finished() -> EmailState:
    papers = PaperSearch(arxiv_metadata=ArxivMetadata(status="ok", found=0))
    email = WrittenEmail(
        email_message="Dear Jane Roe, hello.",
        is_confident=True,
        model="anthropic:claude-sonnet-4-6",
        generation_metadata=GenerationMetadata(
            composer_model="anthropic:claude-sonnet-4-6",
            placeholders=[],
            unfilled_placeholders=[],
            not_confident_reasons=[],
        ),
    )
    timings = {"template_parser": 0.5, "web_scraper": 1.25, "arxiv_helper": 0.1}
    return two_steps_done().model_copy(
        update={
            "arxiv_helper": papers,
            "email_composer": email,
            "step_timings": {**timings, "email_composer": 2.0},
        }
    )


def test_email_metadata_keeps_the_documented_shape() -> None:
    metadata = email_metadata(finished())
    assert list(metadata) == [
        "search_terms",
        "template_type",
        "scraped_urls",
        "scraping_metadata",
        "arxiv_papers",
        "arxiv_metadata",
        "step_timings",
        "model",
        "generation_metadata",
        "usage",
        "grounding",
    ]
    assert metadata["grounding"] is None  # a composer output saved before grounding
    assert metadata["arxiv_metadata"] == {"status": "ok", "found": 0}
    assert metadata["scraping_metadata"]["citations"] == [
        {"url": "https://uni.example/roe", "title": "Profile", "query": "background"}
    ]
    assert set(metadata["scraping_metadata"]) == {
        "search",
        "queries",
        "citations",
        "pages",
        "browser",
    }
    assert json.loads(json.dumps(metadata)) == metadata


def test_email_result_only_once_the_composer_wrote_an_email() -> None:
    assert email_result(two_steps_done()) is None
    result = email_result(finished())
    assert result is not None
    assert (result.message, result.template_type, result.is_confident) == (
        "Dear Jane Roe, hello.",
        "research",
        True,
    )
    assert set(result.step_timings) == set(result.metadata["step_timings"])
