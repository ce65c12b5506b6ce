"""Every failure mode of the providers, against the fakes' scripted answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scribe.clients import Clients
from scribe.clients.extract import TextExtractor
from scribe.errors import (
    PermanentStepError,
    ProviderPaused,
    TransientStepError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from scribe.providers.account import Status
from scribe.steps import Step, email_composer
from scribe.steps.email_composer import Brief
from scribe.steps.models import ArxivMetadata, PaperSearch, ScrapingMetadata, WebResearch
from scribe.steps.pipeline import build_pipeline, email_metadata
from tests.fakes.fixtures import fake_clients, fake_settings, item, run_pipeline
from tests.fakes.services import FakeServices, Scripted


def step(clients: Clients, name: str) -> Step:
    """The pipeline's step ``name`` with ``clients`` bound."""
    return next(s for s in build_pipeline(clients) if s.name == name)


async def test_llm_429_with_retry_after_is_retried_by_the_client(fakes: FakeServices) -> None:
    fakes.script("anthropic", Scripted(status=429, headers={"retry-after-ms": "50"}))
    async with fake_clients(fake_settings(fakes, llm_max_retries=1), fakes) as clients:
        data = await step(clients, "template_parser").run(item())
    assert data.parsed().template_type == "research"
    assert len(fakes.of("anthropic")) == 2


async def test_llm_429_is_waited_out_by_the_pacer_without_sdk_retries(
    fakes: FakeServices,
) -> None:
    fakes.script(
        "anthropic",
        Scripted(status=429, headers={"retry-after-ms": "50"}),
        Scripted(status=429, headers={"retry-after-ms": "50"}),
    )
    async with fake_clients(fake_settings(fakes, llm_max_retries=0), fakes) as clients:
        data = await step(clients, "template_parser").run(item())
    assert data.parsed().template_type == "research"
    assert len(fakes.of("anthropic")) == 3


@pytest.mark.parametrize("status", [529, 500])
async def test_llm_overload_and_server_errors_are_transient(
    fakes: FakeServices, status: int
) -> None:
    fakes.script("anthropic", Scripted(status=status, headers={"retry-after-ms": "2500"}))
    async with fake_clients(fake_settings(fakes), fakes) as clients:
        with pytest.raises(UpstreamUnavailable) as caught:
            await step(clients, "template_parser").run(item())
    assert caught.value.retry_after == 2.5
    # The account, not the item, is at fault: no attempt charged, its breaker is fed.
    assert caught.value.provider == "anthropic:claude-haiku"


async def test_llm_timeout_is_transient(fakes: FakeServices) -> None:
    fakes.script("anthropic", Scripted(delay=2.0))
    settings = fake_settings(fakes, llm_timeout_seconds=0.3)
    async with fake_clients(settings, fakes) as clients:
        with pytest.raises(UpstreamUnavailable):
            await step(clients, "template_parser").run(item())


async def test_llm_bad_request_is_rejected(fakes: FakeServices) -> None:
    fakes.script("anthropic", Scripted(status=400))
    async with fake_clients(fake_settings(fakes), fakes) as clients:
        with pytest.raises(UpstreamRejected):
            await step(clients, "template_parser").run(item())


async def test_llm_rejected_key_pauses_the_provider_and_names_the_setting_in_the_log_only(
    fakes: FakeServices, caplog: pytest.LogCaptureFixture
) -> None:
    fakes.script("anthropic", Scripted(status=401))
    async with fake_clients(fake_settings(fakes), fakes) as clients:
        with pytest.raises(ProviderPaused) as failure:
            await step(clients, "template_parser").run(item())
        with pytest.raises(ProviderPaused):  # the next item waits without calling
            await step(clients, "template_parser").run(item())
        [paused] = clients.accounts.waiting()
        assert (paused.account, paused.status, paused.reason) == (
            "anthropic:claude-haiku",
            Status.PAUSED,
            "HTTP 401",
        )
    assert failure.value.provider == "anthropic:claude-haiku"  # the account: no attempt charged
    assert "ANTHROPIC_API_KEY" not in failure.value.message
    assert len(fakes.of("anthropic")) == 1
    logged = [r.getMessage() for r in caplog.records if "paused" in r.getMessage()]
    assert len(logged) == 1 and "check ANTHROPIC_API_KEY" in logged[0]


async def test_llm_credit_exhausted_pauses_the_provider(fakes: FakeServices) -> None:
    fakes.script(
        "anthropic",
        Scripted(status=400, body="Your credit balance is too low to access the Anthropic API."),
    )
    async with fake_clients(fake_settings(fakes), fakes) as clients:
        with pytest.raises(ProviderPaused, match="credit balance"):
            await step(clients, "template_parser").run(item())


async def test_malformed_output_is_asked_again_once(fakes: FakeServices) -> None:
    fakes.script("anthropic", Scripted(body="Sure! Here is the analysis: not json"))
    async with fake_clients(fake_settings(fakes), fakes) as clients:
        data = await step(clients, "template_parser").run(item())
    assert data.parsed().template_type == "research"
    assert len(fakes.of("anthropic")) == 2
    assert data.parsed().usage[0].input_tokens > 0


async def test_malformed_output_twice_is_permanent(fakes: FakeServices) -> None:
    fakes.script("anthropic", Scripted(body="{bad"), Scripted(body='{"template_type": "x"}'))
    async with fake_clients(fake_settings(fakes), fakes) as clients:
        with pytest.raises(PermanentStepError):
            await step(clients, "template_parser").run(item())


async def test_fenced_and_reasoning_wrapped_output_is_accepted(fakes: FakeServices) -> None:
    fills = [
        {"placeholder": "{{professor_name}}", "value": "Jane Roe", "sources": []},
        {"placeholder": "{{paper_title}}", "value": "your recent work", "sources": []},
        {"placeholder": "{{research_area}}", "value": "quantum widgets", "sources": []},
    ]
    body = f"<think>the user wants...</think>\n```json\n{json.dumps({'fills': fills})}\n```"
    async with fake_clients(fake_settings(fakes), fakes) as clients:
        data = await step(clients, "template_parser").run(item())
        fakes.script("anthropic", Scripted(body=body))
        brief = Brief(
            data.inputs,
            data.parsed(),
            WebResearch(scraping_metadata=ScrapingMetadata(search="skipped")),
            PaperSearch(arxiv_metadata=ArxivMetadata(status="skipped")),
        )
        email = await email_composer.run(brief, clients.composer_llm)
    assert email.email_message.startswith("Dear Jane Roe,\n\nI recently read your paper your rec")
    assert email.is_confident is False  # no research data in this test
    assert email.generation_metadata.not_confident_reasons == ["no research data found"]


async def test_unfilled_placeholder_is_filled_and_not_confident(fakes: FakeServices) -> None:
    fills = [
        {"placeholder": "{{professor_name}}", "value": "Jane Roe", "sources": []},
        {"placeholder": "{{research_area}}", "value": "widgets \u2014 truly", "sources": []},
    ]
    async with fake_clients(fake_settings(fakes), fakes) as clients:
        data = await run_pipeline(build_pipeline(clients)[:3], item())
        fakes.script("anthropic", Scripted(body=json.dumps({"fills": fills})))
        email = await email_composer.run(data.brief(), clients.composer_llm)
    # The paper title the model left out is filled by rule (the recipient's first paper), and
    # the em dash of the model's value is gone.
    assert "your paper Entangled Widgets at Scale and" in email.email_message
    assert "interest in widgets, truly." in email.email_message
    assert email.is_confident is False
    assert email.generation_metadata.unfilled_placeholders == ["{{paper_title}}"]


async def test_exa_401_pauses_search_instead_of_failing_items(
    fakes: FakeServices, caplog: pytest.LogCaptureFixture
) -> None:
    fakes.script("exa", Scripted(status=401), Scripted(status=401))
    async with fake_clients(fake_settings(fakes), fakes) as clients:
        data = await step(clients, "template_parser").run(item())
        with pytest.raises(ProviderPaused, match="401") as failure:
            await step(clients, "web_scraper").run(data)
    # The hint is for the operator: it goes to the log, never into the item's error_message.
    assert "EXA_API_KEY" not in failure.value.message
    assert any("check EXA_API_KEY" in record.getMessage() for record in caplog.records)


async def test_exa_timeout_is_transient(fakes: FakeServices) -> None:
    fakes.script("exa", Scripted(delay=3.0), Scripted(delay=3.0))
    async with fake_clients(fake_settings(fakes), fakes) as clients:
        clients.search.timeout = 0.3  # type: ignore[union-attr]
        data = await step(clients, "template_parser").run(item())
        with pytest.raises(UpstreamUnavailable):
            await step(clients, "web_scraper").run(data)


async def test_exa_503_is_transient(fakes: FakeServices) -> None:
    fakes.script("exa", Scripted(status=503))
    async with fake_clients(fake_settings(fakes), fakes) as clients:
        data = await step(clients, "template_parser").run(item())
        with pytest.raises(UpstreamUnavailable):
            await step(clients, "web_scraper").run(data)


async def test_arxiv_down_still_produces_an_email_without_papers(fakes: FakeServices) -> None:
    fakes.script("arxiv", Scripted(status=503))
    async with fake_clients(fake_settings(fakes), fakes) as clients:
        data = await run_pipeline(build_pipeline(clients), item())
    metadata = email_metadata(data)
    assert metadata["arxiv_papers"] == [] and metadata["arxiv_metadata"]["status"] == "failed"
    assert data.email_composer and "{{" not in data.email_composer.email_message


async def test_arxiv_results_are_cached_by_author(fakes: FakeServices) -> None:
    async with fake_clients(fake_settings(fakes), fakes) as clients:
        first = await clients.papers.papers_by("Jane Roe")
        second = await clients.papers.papers_by("jane roe")
    assert first and second and len(fakes.of("arxiv")) == 1


async def test_arxiv_cache_stays_within_its_bound_and_drops_expired_authors(
    fakes: FakeServices,
) -> None:
    settings = fake_settings(
        fakes, scribe_arxiv_min_interval_seconds=0, scribe_arxiv_cache_entries=5
    )
    async with fake_clients(settings, fakes) as clients:
        papers = clients.papers
        for n in range(12):
            assert await papers.papers_by(f"Jane Roe{n}")
            assert len(papers.cache) <= 5
        assert len(fakes.of("arxiv")) == 12
        await papers.papers_by("Jane Roe11")  # still cached: no request
        assert len(fakes.of("arxiv")) == 12
        papers.cache.ttl_seconds = 1e-9  # every entry stored so far is now past its time
        await papers.papers_by("Jane Roe11")
        assert len(fakes.of("arxiv")) == 13
        assert len(papers.cache) == 1  # the others were dropped, not kept


async def test_a_failed_page_extractor_is_the_web_scrapers_step_error(
    fakes: FakeServices, tmp_path: Path
) -> None:
    broken = tmp_path / "extract_child.py"
    broken.write_text("import sys\nsys.exit(3)\n")
    async with fake_clients(fake_settings(fakes), fakes) as clients:
        clients.pages._extractor = TextExtractor(child=broken)  # what every page is read with
        data = await step(clients, "template_parser").run(item())
        with pytest.raises(TransientStepError) as failure:
            await step(clients, "web_scraper").run(data)
    assert str(failure.value) == (
        "page text extraction failed: it exited with status 3 without an answer"
    )
