"""Step 2, web_scraper: two concurrent Exa searches, thin pages read in full, citations kept,
and each result about the recipient kept as a source with an id (the rest listed as dropped).

Reads the inputs and the ``ParsedTemplate``; needs search, the page fetcher and the browser
(``WebClients``); adds a ``WebResearch``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from scribe.clients.browser import BrowserPool
from scribe.clients.fetch import PageFetcher, PageText
from scribe.clients.search import ExaSearch, SearchHit
from scribe.domain.names import plain_name
from scribe.domain.sources import reason_to_drop
from scribe.domain.text import is_web_url, plain_title
from scribe.errors import (
    FetchRefused,
    NonPublicAddress,
    PermanentStepError,
    StepError,
    TransientStepError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from scribe.providers.account import Timer
from scribe.steps.models import (
    Citation,
    DroppedSource,
    EmailInputs,
    PageRecord,
    ParsedTemplate,
    ScrapingMetadata,
    Source,
    SourceKind,
    WebResearch,
)

log = logging.getLogger(__name__)

THIN_TEXT_CHARS = 400  # a search hit with less text than this gets its page fetched
MAX_PAGE_FETCHES = 3
PAGE_DEADLINE_SECONDS = 15.0
MAX_CONTENT_CHARS = 12_000  # a hit's text as stored before it is cut to a source
MAX_SOURCE_CHARS = 3_000
MAX_HITS_PER_QUERY = 10  # a search answer longer than this is cut (Exa is asked for 5)
MAX_TITLE_CHARS = 300
MAX_URL_CHARS = 2_048


@dataclass(frozen=True, slots=True)
class WebClients:
    """The clients this step needs."""

    search: ExaSearch | None  # None: no EXA_API_KEY, search is skipped
    pages: PageFetcher
    browser: BrowserPool


_PUBLICATIONS = {
    "research": "Research papers and publications authored by {name} on {interest}",
    "book": "Books written by {name}",
    "general": "Recent projects, talks and publications by {name} on {interest}",
}


def build_queries(
    inputs: EmailInputs, template: ParsedTemplate
) -> dict[str, tuple[str, str | None]]:
    """The two queries: background (position, institution, work) and publications (by type),
    each with an optional system prompt for the search engine."""
    name = plain_name(inputs.recipient_name)
    terms = template.search_terms
    background = (
        f"{terms[0] if terms else name}: current position, institution, biography and research"
    )
    publications = _PUBLICATIONS[template.template_type].format(
        name=name, interest=inputs.recipient_interest
    )
    only_authored = (
        f"Return only works where {name} is one of the authors. Do not return works that merely "
        "cite or discuss them. If no such work can be verified, return nothing."
    )
    return {"background": (background, None), "publications": (publications, only_authored)}


def canonical_url(url: str) -> str:
    """A URL without fragment and trailing slash, host lower-cased (for deduplication)."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/") or ""
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


async def _search_all(
    search: ExaSearch, queries: dict[str, tuple[str, str | None]], timer: Timer | None
) -> dict[str, list[SearchHit]]:
    names = list(queries)
    results = await asyncio.gather(
        *(search.search(q, system_prompt=sp, timer=timer) for q, sp in queries.values()),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    for error in errors:  # a permanent failure wins: retrying would not help the other query
        if isinstance(error, PermanentStepError | UpstreamRejected):
            raise error
    for error in errors:
        if isinstance(error, StepError | UpstreamUnavailable):
            raise error
        raise TransientStepError(str(error))
    return {name: r for name, r in zip(names, results, strict=True) if isinstance(r, list)}


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


async def _read_page(clients: WebClients, url: str) -> tuple[PageText | None, PageRecord]:
    record = PageRecord(url=url)
    page: PageText | None = None
    try:
        page = await clients.pages.read(url, deadline=PAGE_DEADLINE_SECONDS)
        record.method, record.chars = "httpx", len(page.text)
    except (FetchRefused, httpx.HTTPError) as exc:
        record.error = _error(exc)
        if isinstance(exc, NonPublicAddress):
            return None, record
    if (page is None or len(page.text) < THIN_TEXT_CHARS) and clients.browser.available:
        try:
            rendered = await clients.browser.read(url, deadline=PAGE_DEADLINE_SECONDS)
            record.method, record.chars, record.error = "browser", len(rendered.text), None
            if page is None or len(rendered.text) > len(page.text):
                page = rendered
        except (FetchRefused, TimeoutError) as exc:
            record.browser_error = _error(exc)
    return page, record


def keep_about_recipient(
    inputs: EmailInputs, found: list[tuple[str, SearchHit, bool]]
) -> tuple[list[Source], list[DroppedSource]]:
    """The results about the recipient as sources ``W1``, ``W2``… (text capped at
    ``MAX_SOURCE_CHARS``), and the others as dropped, with why. ``found`` holds each result's
    query name, hit, and whether its page was read in full."""
    kept: list[Source] = []
    dropped: list[DroppedSource] = []
    for query_name, hit, read in found:
        text = hit.text[:MAX_SOURCE_CHARS]
        reason = reason_to_drop(hit.title, text, inputs.recipient_name, inputs.recipient_interest)
        if not text.strip():
            reason = "no text"
        if reason is not None:
            dropped.append(DroppedSource(url=hit.url, title=hit.title, reason=reason))
            continue
        kind: SourceKind = "page" if read else "search"
        source_id = f"W{len(kept) + 1}"
        kept.append(
            Source(
                id=source_id, kind=kind, url=hit.url, title=hit.title, text=text, query=query_name
            )
        )
    return kept, dropped


def _stored_hits(hits: list[SearchHit]) -> list[SearchHit]:
    """The hits worth keeping, as they may be stored: at most ``MAX_HITS_PER_QUERY``, only
    http(s) URLs (never ``javascript:`` or ``data:``), titles as plain text, text capped."""
    kept: list[SearchHit] = []
    for hit in hits:
        if len(kept) == MAX_HITS_PER_QUERY:
            break
        if len(hit.url) > MAX_URL_CHARS or not is_web_url(hit.url):
            log.info("search hit dropped: not an http(s) URL (%.80r)", hit.url)
            continue
        title = plain_title(hit.title, MAX_TITLE_CHARS)
        kept.append(SearchHit(hit.url, title, hit.text[:MAX_CONTENT_CHARS], hit.published))
    return kept


async def run(
    inputs: EmailInputs, template: ParsedTemplate, clients: WebClients, timer: Timer | None = None
) -> WebResearch:
    """Search the web for the recipient; skipped (and recorded) without an Exa key. ``timer``:
    the step's, held while the searches wait for the account."""
    if clients.search is None:
        skipped = ScrapingMetadata(search="skipped", reason="web search is not configured")
        return WebResearch(scraping_metadata=skipped)
    queries = build_queries(inputs, template)
    found = await _search_all(clients.search, queries, timer)
    seen: dict[str, tuple[str, SearchHit]] = {}
    for query_name, hits in found.items():
        for hit in _stored_hits(hits):
            seen.setdefault(canonical_url(hit.url), (query_name, hit))
    sources = list(seen.values())
    thin = [i for i, (_, hit) in enumerate(sources) if len(hit.text) < THIN_TEXT_CHARS]
    thin = thin[:MAX_PAGE_FETCHES]
    fetched = await asyncio.gather(*(_read_page(clients, sources[i][1].url) for i in thin))
    page_records = []
    read: set[int] = set()
    for index, (page, record) in zip(thin, fetched, strict=True):
        page_records.append(record)
        query_name, hit = sources[index]
        if page is not None and len(page.text) > len(hit.text):
            sources[index] = (query_name, SearchHit(hit.url, hit.title, page.text, hit.published))
            read.add(index)
    metadata = ScrapingMetadata(
        search="exa",
        queries={name: query for name, (query, _) in queries.items()},
        citations=[
            Citation(url=hit.url, title=hit.title, query=query_name) for query_name, hit in sources
        ],
        pages=page_records,
        browser="available" if clients.browser.available else "unavailable (httpx only)",
    )
    kept, dropped = keep_about_recipient(
        inputs, [(name, hit, i in read) for i, (name, hit) in enumerate(sources)]
    )
    for source in dropped:
        log.info("search result dropped (%s): %.120s", source.reason, source.url)
    return WebResearch(
        scraped_urls=[source.url for source in kept],
        scraping_metadata=metadata,
        sources=kept,
        dropped=dropped,
    )
