"""All four steps in order against the fakes (the queue's HTTP e2e is added on merge)."""

from __future__ import annotations

from scribe.steps import STEP_NAMES
from scribe.steps.pipeline import (
    EmailResult,
    EmailState,
    build_pipeline,
    email_metadata,
    email_result,
)
from tests.fakes.fixtures import (
    GENERAL_TEMPLATE,
    fake_clients,
    fake_settings,
    item,
    run_pipeline,
)
from tests.fakes.services import ARXIV_TITLE, EXA_FACT, FakeServices


def result(state: EmailState) -> EmailResult:
    """The finished email (the composer wrote one)."""
    written = email_result(state)
    assert written is not None
    return written


async def test_research_email_uses_search_and_arxiv_facts(fakes: FakeServices) -> None:
    async with fake_clients(fake_settings(fakes), fakes) as clients:
        data = await run_pipeline(build_pipeline(clients), item())

    composer_prompt = fakes.of("anthropic")[-1].body["messages"][0]["content"]
    assert EXA_FACT in composer_prompt and ARXIV_TITLE in composer_prompt
    email = result(data)
    assert "{{" not in email.message and ARXIV_TITLE in email.message
    assert email.is_confident is True
    metadata = email.metadata
    assert metadata["template_type"] == "research"
    assert all("Jane Roe" in term for term in metadata["search_terms"])
    assert set(metadata["step_timings"]) == set(STEP_NAMES)
    assert metadata["model"] == "anthropic:claude-sonnet-4-6"
    assert next(p["title"] for p in metadata["arxiv_papers"]) == ARXIV_TITLE
    assert "Someone Else's Widgets" not in str(metadata["arxiv_papers"])  # author check
    assert "Ancient Widget Results" not in str(metadata["arxiv_papers"])  # > 10 years old
    assert len(metadata["usage"]) == 2 and metadata["usage"][0]["estimated_cost_usd"] > 0
    # citations deduplicated: /site/profile and /site/profile#about are one source
    urls = metadata["scraped_urls"]
    assert len(urls) == len({u.split("#")[0] for u in urls})


async def test_publications_query_asks_only_for_authored_works(fakes: FakeServices) -> None:
    async with fake_clients(fake_settings(fakes), fakes) as clients:
        await run_pipeline(build_pipeline(clients), item())
    bodies = [r.body for r in fakes.of("exa")]
    assert len(bodies) == 2
    publications = next(b for b in bodies if "ublications" in b["query"])
    assert "is one of the authors" in publications["systemPrompt"]


async def test_general_template_skips_arxiv(fakes: FakeServices) -> None:
    async with fake_clients(fake_settings(fakes), fakes) as clients:
        data = await run_pipeline(build_pipeline(clients), item(GENERAL_TEMPLATE))
    assert result(data).template_type == "general"
    assert fakes.of("arxiv") == []
    assert email_metadata(data)["arxiv_metadata"]["status"] == "skipped"


async def test_offline_without_keys_produces_an_email_labelled_offline(
    fakes: FakeServices,
) -> None:
    settings = fake_settings(fakes, anthropic_api_key=None, openai_api_key=None, exa_api_key=None)
    async with fake_clients(settings, fakes) as clients:
        data = await run_pipeline(build_pipeline(clients), item())
    email = result(data)
    assert email.metadata["model"] == "offline" and email.is_confident is False
    assert "{{" not in email.message and "Jane Roe" in email.message
    assert email.metadata["scraping_metadata"] == {
        "search": "skipped",
        "reason": "web search is not configured",
    }
    assert fakes.of("anthropic") == [] and fakes.of("exa") == []
    assert email.template_type == "research"


async def test_openai_compatible_provider(fakes: FakeServices) -> None:
    settings = fake_settings(
        fakes,
        template_parser_model="openai:accounts/fireworks/models/llama",
        email_composer_model="openai:accounts/fireworks/models/llama",
    )
    async with fake_clients(settings, fakes) as clients:
        data = await run_pipeline(build_pipeline(clients), item())
    email = result(data)
    assert email.metadata["model"] == "openai:accounts/fireworks/models/llama"
    assert fakes.of("anthropic") == []
    # The fills came back through the OpenAI-compatible structured output, with their sources.
    assert email.is_confident and ARXIV_TITLE in email.message
    fills = email.metadata["grounding"]["fills"]
    assert {"placeholder": "{{paper_title}}", "value": ARXIV_TITLE, "sources": ["P1"]}.items() <= (
        fills[1].items()
    )
    assert EXA_FACT in fakes.of("openai")[-1].body["messages"][-1]["content"]


async def test_anthropic_tool_mode(fakes: FakeServices) -> None:
    settings = fake_settings(fakes, anthropic_structured_output="tool")
    async with fake_clients(settings, fakes) as clients:
        data = await run_pipeline(build_pipeline(clients), item())
    assert "{{" not in result(data).message
    assert fakes.of("anthropic")[0].body["tool_choice"]["type"] == "tool"


async def test_titles_are_dropped_alike_for_web_search_and_arxiv(fakes: FakeServices) -> None:
    async with fake_clients(fake_settings(fakes), fakes) as clients:
        data = await run_pipeline(build_pipeline(clients), item(name="Assoc. Prof. Jane Roe"))
        assert clients.papers.cache.get("jane roe") is not None  # arXiv asked for "Jane Roe"
    publications = next(r.body for r in fakes.of("exa") if "ublications" in r.body["query"])
    assert "authored by Jane Roe on" in publications["query"]
    assert "Assoc" not in publications["systemPrompt"]
    assert result(data).metadata["arxiv_papers"]


async def test_the_pipeline_is_the_four_contract_steps_with_their_providers(
    fakes: FakeServices,
) -> None:
    assert STEP_NAMES == ("template_parser", "web_scraper", "arxiv_helper", "email_composer")
    settings = fake_settings(fakes, email_composer_model="openai:accounts/fireworks/models/x")
    async with fake_clients(settings, fakes) as clients:
        providers = {step.name: step.provider for step in build_pipeline(clients)}
    # Each step waits for its own account: Haiku down does not hold a Sonnet or OpenAI step.
    assert providers == {
        "template_parser": "anthropic:claude-haiku",
        "web_scraper": "exa",
        "arxiv_helper": None,  # optional: its failure never fails the email
        "email_composer": f"openai:{settings.openai_base_url}",
    }
    offline = fake_settings(fakes, anthropic_api_key=None, openai_api_key=None, exa_api_key=None)
    async with fake_clients(offline, fakes) as clients:
        assert {step.provider for step in build_pipeline(clients)} == {None}
