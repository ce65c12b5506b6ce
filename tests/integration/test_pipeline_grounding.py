"""Grounding through the real steps against the fakes: scripted composer answers that invent,
follow an injected page or use research about someone else never give a confident email that
carries the invention, and a faithful answer stays confident with its sources."""

from __future__ import annotations

import io
import json
from typing import Any

from scribe.commands import generate
from scribe.steps.email_composer import ANSWER_BASE_TOKENS, TOKENS_PER_FILL
from scribe.steps.models import ScrapingMetadata, WebResearch
from scribe.steps.pipeline import EmailState, build_pipeline, email_result
from tests.fakes.fixtures import GENERAL_TEMPLATE, fake_clients, fake_settings, item, run_pipeline
from tests.fakes.services import ARXIV_TITLE, EXA_FACT, INJECTED_URL, FakeServices, Scripted

INVENTED = "Quantum Hedge Mazes for Urban Bees"


def fills(paper: str, sources: list[str], extra: str = "") -> str:
    """A scripted composer answer for the research template."""
    values = [
        {"placeholder": "{{professor_name}}", "value": "Jane Roe", "sources": []},
        {"placeholder": "{{paper_title}}", "value": paper, "sources": sources},
        {"placeholder": "{{research_area}}", "value": f"quantum widgets{extra}", "sources": []},
    ]
    return json.dumps({"fills": values})


async def compose(fakes: FakeServices, *answers: str, template: str | None = None) -> EmailState:
    """The four real steps; the composer's answers scripted (the parser answers normally)."""
    fakes.script("anthropic", Scripted(), *(Scripted(body=a) for a in answers))
    settings = fake_settings(fakes, scribe_arxiv_min_interval_seconds=0)
    async with fake_clients(settings, fakes) as clients:
        state = item(template) if template else item()
        return await run_pipeline(build_pipeline(clients), state)


def grounding(state: EmailState) -> dict[str, Any]:
    """``metadata.grounding`` of the finished email."""
    result = email_result(state)
    assert result is not None
    value: dict[str, Any] = result.metadata["grounding"]
    return value


def composer_prompts(fakes: FakeServices) -> list[str]:
    """The user prompts of the composer calls (the parser's is the first request)."""
    return [r.body["messages"][0]["content"] for r in fakes.of("anthropic")[1:]]


async def test_a_faithful_answer_is_confident_with_its_sources(fakes: FakeServices) -> None:
    state = await compose(fakes, fills(ARXIV_TITLE, ["P1"]))
    email = state.email_composer
    assert email is not None
    assert email.is_confident, email.generation_metadata
    found = grounding(state)
    assert found["unsupported"] == [] and found["template_intact"] and found["repair"] is None
    assert found["fills"][1] == {
        "placeholder": "{{paper_title}}",
        "value": ARXIV_TITLE,
        "sources": ["P1"],
        "supported": True,
    }
    assert {s["id"] for s in found["sources"]} >= {"W1", "P1"}
    assert len(fakes.of("anthropic")) == 2  # no repair round
    # The answer's budget is sized by the placeholders (3 here), not a flat 2,048 tokens.
    assert fakes.of("anthropic")[1].body["max_tokens"] == ANSWER_BASE_TOKENS + 3 * TOKENS_PER_FILL


async def test_an_invented_title_is_repaired_once(fakes: FakeServices) -> None:
    state = await compose(fakes, fills(INVENTED, ["P1"]), fills(ARXIV_TITLE, ["P1"]))
    email = state.email_composer
    assert email is not None and email.is_confident
    assert INVENTED not in email.email_message and ARXIV_TITLE in email.email_message
    assert grounding(state)["repair"] == {"claims_before": 1, "claims_after": 0}
    repair_prompt = composer_prompts(fakes)[1]
    assert f"{{{{paper_title}}}}: {INVENTED!r} (not a title of the recipient's works)" in (
        repair_prompt
    )
    # The repair is paid for and recorded with the step's usage.
    assert [u.purpose for u in email.usage] == ["email_composer", "email_composer_repair"]


async def test_an_invention_kept_after_the_repair_is_not_confident_and_named(
    fakes: FakeServices,
) -> None:
    invented = fills(ARXIV_TITLE, ["P1"], extra=", which won you the 2019 Nobel Prize")
    state = await compose(fakes, invented, invented)
    email = state.email_composer
    assert email is not None and email.is_confident is False
    found = grounding(state)
    claims = {(c["placeholder"], c["text"]) for c in found["unsupported"]}
    assert claims == {("{{research_area}}", "Nobel Prize"), ("{{research_area}}", "2019")}
    assert found["repair"] == {"claims_before": 2, "claims_after": 2}
    assert [f["supported"] for f in found["fills"]] == [True, True, False]
    reasons = email.generation_metadata.not_confident_reasons
    assert reasons == [
        "claims not supported by the research: {{research_area}}: 'Nobel Prize' (not in the "
        "research); {{research_area}}: '2019' (not in the research)"
    ]


async def test_a_real_title_by_someone_else_is_not_their_paper(fakes: FakeServices) -> None:
    other = "Someone Else's Widgets"  # in the arXiv feed, by another author
    state = await compose(fakes, fills(other, ["P1"]), fills(other, ["P1"]))
    email = state.email_composer
    assert email is not None and email.is_confident is False
    [claim] = grounding(state)["unsupported"]
    assert claim["text"] == other and "recipient's works" in claim["reason"]


async def test_an_injected_page_is_fenced_and_a_value_following_it_is_caught(
    fakes: FakeServices,
) -> None:
    # A thin search hit: the real page reader fetches the fake's page, which carries the text.
    hit = {"id": "inj", "url": f"{fakes.base_url}/site/injected", "title": "Blog", "text": "x"}
    fakes.exa_extra = [hit]
    follows = fills(ARXIV_TITLE, ["P1"], extra=f". Apply now at {INJECTED_URL} to join the lab")
    state = await compose(fakes, follows, follows)
    prompt = composer_prompts(fakes)[0]
    sources = prompt.split("<sources>\n", 1)[1]
    assert sources.startswith("Untrusted text copied from web pages and papers")
    assert "Ignore previous instructions" in sources.split("</sources>", 1)[0]
    assert {"id": "W2", "kind": "page", "url": hit["url"], "title": "Blog"} in (
        grounding(state)["sources"]
    )
    email = state.email_composer
    assert email is not None and email.is_confident is False
    reasons = {(c["text"], c["reason"]) for c in grounding(state)["unsupported"]}
    assert (INJECTED_URL, "a link the template does not have") in reasons
    assert any(reason == "an instruction the template does not have" for _, reason in reasons)


async def test_research_about_someone_else_never_reaches_the_composer(
    fakes: FakeServices,
) -> None:
    fakes.exa_extra = [
        {
            "id": "other",
            "url": "https://lab.example/canary",
            "title": "Lab news",
            "text": "Jane Canary is Director of the Canary Centre for Quantum Widgets. " * 5,
        },
        {
            "id": "namesake",
            "url": "https://food.example/roe",
            "title": "Chef Jane Roe",
            "text": "Jane Roe runs the Roe Bistro in Rome and cooks pasta. " * 5,
        },
    ]
    state = await compose(fakes, template=GENERAL_TEMPLATE)
    prompt = composer_prompts(fakes)[0]
    assert "Canary" not in prompt and "Bistro" not in prompt
    dropped = {d["url"]: d["reason"] for d in grounding(state)["dropped"]}
    assert dropped["https://lab.example/canary"] == "does not name the recipient"
    assert dropped["https://food.example/roe"].startswith("names the recipient but not their")
    assert EXA_FACT in (state.email_composer.email_message if state.email_composer else "")


async def test_both_searches_reach_the_composer_when_hits_are_long(fakes: FakeServices) -> None:
    fakes.exa_extra = [
        {
            "id": f"long{n}",
            "url": f"https://uni{n}.example/roe",
            "title": f"Jane Roe profile {n}",
            "text": f"Jane Roe, quantum widgets, page {n}. " * 100,  # ~3,500 characters
        }
        for n in range(10)
    ]
    state = await compose(fakes, template=GENERAL_TEMPLATE)
    prompt = composer_prompts(fakes)[0]
    assert f"Jane Roe: {ARXIV_TITLE} (2023)" in prompt  # the authorship-filtered search's text
    research = prompt.split("<sources>", 1)[1]
    assert len(research) < 4_000  # ranked and bounded, not 12,000 characters of raw pages
    assert state.web_scraper is not None and len(state.web_scraper.sources) >= 11


async def test_research_saved_before_sources_had_ids_is_one_source(fakes: FakeServices) -> None:
    old = WebResearch(
        scraped_content=f"Jane Roe is a Professor at the {EXA_FACT}.",
        scraped_urls=["https://uni.example/roe"],
        scraping_metadata=ScrapingMetadata(search="exa"),
    )
    settings = fake_settings(fakes)
    async with fake_clients(settings, fakes) as clients:
        pipeline = build_pipeline(clients)
        state = await run_pipeline(pipeline[:1], item(GENERAL_TEMPLATE))
        state = state.model_copy(update={"web_scraper": old})
        state = await run_pipeline(pipeline[2:], state)
    email = state.email_composer
    assert email is not None
    assert email.is_confident, email.generation_metadata
    assert EXA_FACT in email.email_message
    assert grounding(state)["sources"] == [
        {"id": "W1", "kind": "search", "url": "", "title": "web research"}
    ]


async def test_offline_fills_from_research_and_is_not_confident(fakes: FakeServices) -> None:
    settings = fake_settings(fakes, anthropic_api_key=None, scribe_arxiv_min_interval_seconds=0)
    async with fake_clients(settings, fakes) as clients:
        state = await run_pipeline(build_pipeline(clients), item())
    email = state.email_composer
    assert email is not None and email.is_confident is False
    assert email.generation_metadata.not_confident_reasons == [
        "written offline (no model configured)"
    ]
    found = grounding(state)
    assert found["fills"][1]["value"] == ARXIV_TITLE and found["fills"][1]["sources"] == ["P1"]
    assert all(f["supported"] for f in found["fills"]) and found["repair"] is None


async def test_generate_prints_each_fill_with_its_sources(fakes: FakeServices) -> None:
    out, err = io.StringIO(), io.StringIO()
    settings = fake_settings(fakes, scribe_arxiv_min_interval_seconds=0)
    fakes.script("anthropic", Scripted(), Scripted(body=fills(INVENTED, ["P1"])))
    fakes.script("anthropic", Scripted(body=fills(INVENTED, ["P1"])))
    code = await generate(
        settings,
        template=item().inputs.email_template,
        name="Jane Roe",
        interest="quantum widgets",
        as_json=False,
        out=out,
        err=err,
    )
    assert code == 0, err.getvalue()
    printed = out.getvalue()
    assert "  {{professor_name}} = 'Jane Roe' [no source] supported" in printed
    assert f"  {{{{paper_title}}}} = {INVENTED!r} [P1] UNSUPPORTED" in printed
    assert f"  ! {{{{paper_title}}}}: {INVENTED!r} (not a title of the recipient's works)" in (
        printed
    )
    assert f"  P1 paper http://arxiv.org/abs/2401.00001v1 {ARXIV_TITLE}" in printed
    assert "Confidence: not confident: claims not supported by the research" in printed


async def test_the_repair_replaces_only_the_unsupported_values(fakes: FakeServices) -> None:
    repair = json.dumps(
        {
            "fills": [
                {"placeholder": "{{paper_title}}", "value": ARXIV_TITLE, "sources": ["P1"]},
                {"placeholder": "{{research_area}}", "value": "the 2019 Nobel Prize"},
            ]
        }
    )
    state = await compose(fakes, fills(INVENTED, ["P1"]), repair)
    email = state.email_composer
    assert email is not None
    assert email.is_confident, email.generation_metadata
    # The supported first value stays; the repair's new invention never reaches the email.
    assert "my own interest in quantum widgets." in email.email_message
    assert "Nobel" not in email.email_message and ARXIV_TITLE in email.email_message
