"""External services behind small interfaces, opened together by ``open_clients``.

``Clients`` is what the pipeline steps and template generation get; the app lifespan (and the
worker) open it once per process and close it on shutdown.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import httpx

from scribe.clients.analyses import AnalysisStore, SharedAnalyses
from scribe.clients.browser import BrowserPool, find_chromium
from scribe.clients.extract import TextExtractor
from scribe.clients.fetch import PageFetcher, guarded_client
from scribe.clients.llm import LLM
from scribe.clients.netguard import AddressPolicy
from scribe.clients.offline import OfflineLLM
from scribe.clients.papers import ArxivPapers
from scribe.clients.pdf import PdfParser
from scribe.clients.search import ExaSearch
from scribe.providers.account import Account
from scribe.providers.accounts import Accounts
from scribe.providers.calls import model_family
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
    accounts: Accounts = field(default_factory=Accounts)  # one record per provider account
    # Template analyses shared by the items of this process (and, through the store, by all).
    analyses: SharedAnalyses = field(default_factory=SharedAnalyses)


def pacing_caps(settings: Settings) -> dict[str, float]:
    """The settings' caps on what the providers' headers allow (per minute)."""
    caps = {
        "requests": settings.scribe_pacing_requests_per_minute,
        "input_tokens": settings.scribe_pacing_input_tokens_per_minute,
        "output_tokens": settings.scribe_pacing_output_tokens_per_minute,
    }
    return {kind: cap for kind, cap in caps.items() if cap is not None}


def openai_caps(settings: Settings) -> dict[str, float]:
    """OpenAI-compatible servers meter total tokens: the input-token cap applies to those."""
    cap = settings.scribe_pacing_input_tokens_per_minute
    return {} if cap is None else {"tokens": cap}


def build_llm(model_id: str, settings: Settings, accounts: Accounts | None = None) -> LLM:
    """The provider for ``provider:model``; the offline provider when its key is missing.
    Models of one account share its record: Anthropic's per model family, OpenAI's per base URL.

    Each SDK is loaded by the first call of a model configured to use it
    (``scribe.clients.sdk``): a process without keys never loads them, a configured one not
    before its first call (``anthropic`` alone is about 40 MiB)."""
    provider, _, model = model_id.partition(":")
    accounts = accounts or Accounts(pacing_caps(settings))
    if provider == "anthropic" and settings.anthropic_api_key is not None:
        from scribe.clients.anthropic_llm import AnthropicLLM

        return AnthropicLLM(
            model,
            api_key=settings.anthropic_api_key.get_secret_value(),
            base_url=settings.anthropic_base_url,
            timeout=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
            mode=settings.anthropic_structured_output,
            pacer=accounts.get(f"anthropic:{model_family(model)}"),
        )
    if provider == "openai" and settings.openai_api_key is not None and settings.openai_base_url:
        from scribe.clients.openai_llm import OpenAILLM

        return OpenAILLM(
            model,
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
            timeout=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
            pacer=accounts.get(f"openai:{settings.openai_base_url}", caps=openai_caps(settings)),
        )
    if provider != "offline":
        log.warning("no API key for %s: using the offline provider", model_id)
    return OfflineLLM()


@asynccontextmanager
async def open_clients(
    settings: Settings,
    http: httpx.AsyncClient,
    *,
    tls: ssl.SSLContext | None = None,
    address_policy: AddressPolicy | None = None,
    analysis_store: AnalysisStore | None = None,
    accounts: Accounts | None = None,
) -> AsyncIterator[Clients]:
    """Open every client for these settings; close them in reverse on exit.

    ``http`` is the process's trusted HTTP client (arXiv); ``tls`` the TLS context to share with
    it (default: a context of the guarded client's own). ``address_policy`` is a TEST-ONLY hook
    widening the SSRF rule (for the fakes on loopback); production passes nothing.
    ``analysis_store`` shares template analyses between processes (without it, within this one).
    ``accounts``: the provider account records (the composition root's; else fresh ones).
    """
    policy = address_policy or AddressPolicy()
    accounts = accounts or Accounts(pacing_caps(settings))
    async with AsyncExitStack() as stack:
        fetch_http = guarded_client(policy, verify=tls if tls is not None else True)
        stack.push_async_callback(fetch_http.aclose)
        llms: dict[str, LLM] = {}
        for model_id in (
            settings.template_parser_model,
            settings.email_composer_model,
            settings.template_generator_model,
        ):
            if model_id not in llms:
                llms[model_id] = build_llm(model_id, settings, accounts)
                stack.push_async_callback(llms[model_id].aclose)
        search = None
        if settings.exa_api_key is not None:
            rate = settings.scribe_exa_requests_per_minute
            search = ExaSearch(
                settings.exa_api_key.get_secret_value(),
                settings.exa_base_url,
                pacer=accounts.get("exa", caps={"requests": rate}, burst=max(1.0, rate / 60)),
                max_retries=settings.llm_max_retries,
            )
            stack.push_async_callback(search.aclose)
        else:
            log.warning("no EXA_API_KEY: web search is skipped and emails are not confident")
        executable = find_chromium(settings.scribe_chromium_path)
        if executable is None:
            log.warning("no Chromium found: pages that need JavaScript are read without it")
        extractor = TextExtractor.from_settings(settings)  # one bound for static and rendered
        browser = BrowserPool(
            policy,
            executable,
            pages=settings.scribe_browser_pages,
            idle_seconds=settings.scribe_browser_idle_seconds,
            extractor=extractor,
        )
        stack.push_async_callback(browser.close)
        yield Clients(
            parser_llm=llms[settings.template_parser_model],
            composer_llm=llms[settings.email_composer_model],
            generator_llm=llms[settings.template_generator_model],
            search=search,
            pages=PageFetcher(fetch_http, extractor),
            browser=browser,
            papers=ArxivPapers(
                http,
                settings.arxiv_api_url,
                min_interval=settings.scribe_arxiv_min_interval_seconds,
                pacer=arxiv_pacer(accounts, settings.scribe_arxiv_min_interval_seconds),
                cache_seconds=settings.scribe_arxiv_cache_seconds,
                cache_entries=settings.scribe_arxiv_cache_entries,
            ),
            fetch_http=fetch_http,
            pdf=PdfParser.from_settings(settings),
            accounts=accounts,
            analyses=SharedAnalyses(analysis_store),
        )


def arxiv_pacer(accounts: Accounts, min_interval: float) -> Account:
    """arXiv's one request per ``min_interval`` seconds: a bucket that holds one request."""
    caps = {"requests": 60.0 / min_interval} if min_interval > 0 else {}
    return accounts.get("arxiv", caps=caps, burst=1.0)
