"""Papers by an author from the arXiv API, through the ``arxiv`` package.

The package is synchronous and has no request timeout, so it only builds the query URL (its
``Client`` with ``query_url_format`` pointed at ``ARXIV_API_URL``) and parses the Atom feed (its
own parser, in a thread); the request itself is made with httpx under a real timeout. Requests
are paced to one per ``min_interval`` seconds process-wide (arXiv's terms: one every 3 s), and
results are cached by author name for hours, so repeated recipients cost no request. The cache is
bounded (``cache_entries`` authors, oldest dropped first) and keeps only what selection can use:
the author's own papers of the last ``PAPER_YEARS`` years.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httpx

from scribe.clients.cache import SingleFlight, TtlCache
from scribe.domain.names import fold
from scribe.domain.papers import PAPER_YEARS, Paper, own_recent
from scribe.errors import ExternalServiceError
from scribe.providers.account import Account, Timer
from scribe.providers.buckets import Cost

if TYPE_CHECKING:
    import arxiv


class ArxivPapers:
    """Look up a recipient's arXiv papers (paced, cached, time-limited)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_url: str,
        *,
        min_interval: float = 3.0,
        timeout: float = 15.0,
        cache_seconds: float = 6 * 3600,
        cache_entries: int = 64,
        max_results: int = 50,
        pacer: Account | None = None,
    ) -> None:
        self._http = http
        self._api_url = api_url
        self._client: arxiv.Client | None = None  # built on first lookup (see _arxiv)
        # arXiv asks for one request every 3 s: an account whose bucket holds one request.
        caps = {"requests": 60.0 / min_interval} if min_interval > 0 else {}
        self.pacer = pacer or Account("arxiv", caps=caps, burst=1.0)
        self._timeout = timeout
        self._max_results = max_results
        self.cache: TtlCache[str, list[Paper]] = TtlCache(cache_entries, cache_seconds)
        self._lookups: SingleFlight[str, list[Paper]] = SingleFlight()

    async def papers_by(self, author: str, timer: Timer | None = None) -> list[Paper]:
        """``author``'s own papers of the last ``PAPER_YEARS`` years (the only ones an email may
        cite); ExternalServiceError when arXiv fails. ``author`` is a plain name, no titles.
        ``timer``: the calling step's, held while waiting for arXiv's pacing."""
        key = fold(author)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        # Items asking for the same author at once share one request.
        return await self._lookups.run(key, lambda: self._lookup(author, key, timer))

    async def _lookup(self, author: str, key: str, timer: Timer | None) -> list[Paper]:
        own = own_recent(author, await self._query(author, timer), years=PAPER_YEARS)
        self.cache.put(key, own)
        return own

    def _arxiv(self) -> arxiv.Client:
        """The package's client, imported and built on first use (not at start-up; the first
        call runs in a thread so the import does not hold the event loop)."""
        if self._client is None:
            import arxiv

            self._client = arxiv.Client(page_size=self._max_results, delay_seconds=0, num_retries=0)
            self._client.query_url_format = self._api_url + "?{}"
        return self._client

    async def _query(self, author: str, timer: Timer | None) -> list[Paper]:
        client = self._client if self._client is not None else await asyncio.to_thread(self._arxiv)
        import arxiv  # loaded by _arxiv
        from arxiv import _feed  # the package's Atom parser (arxiv>=4)

        search = arxiv.Search(
            query=f'au:"{author}"',
            max_results=self._max_results,
            sort_by=arxiv.SortCriterion.SubmittedDate,
        )
        url = client._format_url(search, 0, self._max_results)
        reservation = await self.pacer.acquire(Cost(), timer)
        try:
            response = await self._http.get(url, timeout=self._timeout)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            self.pacer.release(reservation, None)
            raise ExternalServiceError(f"arXiv request failed: {type(exc).__name__}") from exc
        except BaseException:
            self.pacer.release(reservation, None)
            raise
        self.pacer.settle(reservation, None, None)
        feed = await asyncio.to_thread(_feed.parse, response.content)
        if feed.malformed:
            raise ExternalServiceError("arXiv returned a malformed feed")
        return [_paper(result) for result in feed.results]


def _paper(result: arxiv.Result) -> Paper:
    return Paper(
        title=" ".join(result.title.split()),
        arxiv_url=result.entry_id,
        year=result.published.year,
        abstract=" ".join(result.summary.split())[:1500],
        authors=[author.name for author in result.authors],
    )
