"""External services behind small interfaces, opened together by ``open_clients``.

``Clients`` is what the pipeline steps and template generation get; the app lifespan (and the
worker) open it once per process and close it on shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import httpx

from scribe.clients.browser import BrowserPool, find_chromium
from scribe.clients.fetch import PageFetcher, guarded_client
from scribe.clients.llm import LLM
from scribe.clients.netguard import AddressPolicy
from scribe.clients.offline import OfflineLLM
from scribe.clients.papers import ArxivPapers
from scribe.clients.pdf import PdfLimits, PdfParser
from scribe.clients.search import ExaSearch
from scribe.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Clients:
    """The process's external-service clients."""

    parser_llm: LLM
    composer_llm: LLM
    generator_llm: LLM
    search: ExaSearch | None  # None: no EXA_API_KEY, search is skipped
    pages: PageFetcher
    browser: BrowserPool
    papers: ArxivPapers
    fetch_http: httpx.AsyncClient  # SSRF-guarded client for untrusted URLs (pages, PDFs)
    pdf: PdfParser = field(default_factory=PdfParser)  # resume text, in bounded child processes


def build_llm(model_id: str, settings: Settings) -> LLM:
    """The provider for ``provider:model``; the offline provider when its key is missing.

    Each SDK is imported only here, when a model is configured to use it (``anthropic`` alone
    is about 40 MiB): a process without keys never loads them."""
    provider, _, model = model_id.partition(":")
    if provider == "anthropic" and settings.anthropic_api_key is not None:
        from scribe.clients.anthropic_llm import AnthropicLLM

        return AnthropicLLM(
            model,
            api_key=settings.anthropic_api_key.get_secret_value(),
            base_url=settings.anthropic_base_url,
            timeout=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
            mode=settings.anthropic_structured_output,
        )
    if provider == "openai" and settings.openai_api_key is not None and settings.openai_base_url:
        from scribe.clients.openai_llm import OpenAILLM

        return OpenAILLM(
            model,
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
            timeout=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
        )
    if provider != "offline":
        log.warning("no API key for %s: using the offline provider", model_id)
    return OfflineLLM()


@asynccontextmanager
async def open_clients(
    settings: Settings, http: httpx.AsyncClient, *, address_policy: AddressPolicy | None = None
) -> AsyncIterator[Clients]:
    """Open every client for these settings; close them in reverse on exit.

    ``http`` is the process's trusted HTTP client (arXiv). ``address_policy`` is a TEST-ONLY
    hook widening the SSRF rule (for the fakes on loopback); production passes nothing.
    """
    policy = address_policy or AddressPolicy()
    async with AsyncExitStack() as stack:
        fetch_http = guarded_client(policy)
        stack.push_async_callback(fetch_http.aclose)
        llms: dict[str, LLM] = {}
        for model_id in (
            settings.template_parser_model,
            settings.email_composer_model,
            settings.template_generator_model,
        ):
            if model_id not in llms:
                llms[model_id] = build_llm(model_id, settings)
                stack.push_async_callback(llms[model_id].aclose)
        search = None
        if settings.exa_api_key is not None:
            search = ExaSearch(settings.exa_api_key.get_secret_value(), settings.exa_base_url)
            stack.push_async_callback(search.aclose)
        else:
            log.warning("no EXA_API_KEY: web search is skipped and emails are not confident")
        executable = find_chromium(settings.scribe_chromium_path)
        if executable is None:
            log.warning("no Chromium found: pages that need JavaScript are read without it")
        browser = BrowserPool(
            policy,
            executable,
            pages=settings.scribe_browser_pages,
            idle_seconds=settings.scribe_browser_idle_seconds,
        )
        stack.push_async_callback(browser.close)
        yield Clients(
            parser_llm=llms[settings.template_parser_model],
            composer_llm=llms[settings.email_composer_model],
            generator_llm=llms[settings.template_generator_model],
            search=search,
            pages=PageFetcher(fetch_http),
            browser=browser,
            papers=ArxivPapers(
                http,
                settings.arxiv_api_url,
                min_interval=settings.scribe_arxiv_min_interval_seconds,
                cache_seconds=settings.scribe_arxiv_cache_seconds,
                cache_entries=settings.scribe_arxiv_cache_entries,
            ),
            fetch_http=fetch_http,
            pdf=PdfParser(
                PdfLimits(
                    cpu_seconds=settings.scribe_pdf_cpu_seconds,
                    memory_mb=settings.scribe_pdf_memory_mb,
                    max_pages=settings.scribe_pdf_max_pages,
                ),
                concurrency=settings.scribe_pdf_parses,
            ),
        )
