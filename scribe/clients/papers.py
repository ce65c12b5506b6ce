"""Papers by a recipient from the arXiv API, through the ``arxiv`` package.

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
import re
import unicodedata
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx

from scribe.clients.cache import TtlCache
from scribe.clients.pacing import Cost, Pacer
from scribe.errors import ExternalServiceError
from scribe.steps.data import Paper

if TYPE_CHECKING:
    import arxiv

# Linear: a \b-anchored alternation of literal words and one optional dot (no repetition), and a
# single character-class run that stops at the first non-matching character.
_HONORIFICS = re.compile(
    r"\b(dr|prof|professor|mr|mrs|ms|mx|miss|sir|dame|assoc|assistant|associate|phd|md)\b\.?",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z0-9]+")
PAPER_YEARS = 10  # papers older than this are never chosen
_STOPWORDS = {"and", "of", "the", "in", "for", "on", "to", "a", "an", "with", "at", "by"}


def strip_honorifics(name: str) -> str:
    """``"Prof. Dr. Jane Q. Roe, PhD"`` → ``"Jane Q. Roe"``."""
    cleaned = _HONORIFICS.sub(" ", name.replace(",", " "))
    return " ".join(cleaned.split())


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def same_author(wanted: str, candidate: str) -> bool:
    """Same surname and compatible first name (full or initial), accents and case ignored."""
    want, have = _WORD.findall(_fold(wanted)), _WORD.findall(_fold(candidate))
    if not want or not have or want[-1] != have[-1]:
        return False
    if len(want) == 1 or len(have) == 1:
        return True
    return want[0][0] == have[0][0] and (
        len(want[0]) == 1 or len(have[0]) == 1 or want[0] == have[0]
    )


def relevance(interest: str, paper: Paper) -> int:
    """How many words of the interest occur in the title and abstract."""
    words = {w for w in _WORD.findall(interest.lower()) if w not in _STOPWORDS and len(w) > 2}
    haystack = set(_WORD.findall(f"{paper.title} {paper.abstract}".lower()))
    return len(words & haystack)


def own_recent(name: str, papers: list[Paper], *, years: int = PAPER_YEARS) -> list[Paper]:
    """The papers of the last ``years`` years that ``name`` is an author of."""
    oldest = datetime.now(UTC).year - years
    return [p for p in papers if p.year >= oldest and any(same_author(name, a) for a in p.authors)]


def select_papers(
    name: str, interest: str, papers: list[Paper], *, limit: int = 5, years: int = PAPER_YEARS
) -> list[Paper]:
    """The recipient's own papers of the last ``years`` years, relevant ones first, newest first
    within each group, at most ``limit``."""
    own = own_recent(name, papers, years=years)
    own.sort(
        key=lambda p: (relevance(interest, p) > 0, p.year, relevance(interest, p)), reverse=True
    )
    return own[:limit]


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
        pacer: Pacer | None = None,
    ) -> None:
        self._http = http
        self._api_url = api_url
        self._client: arxiv.Client | None = None  # built on first lookup (see _arxiv)
        # arXiv asks for one request every 3 s: a pacer whose bucket holds one request.
        caps = {"requests": 60.0 / min_interval} if min_interval > 0 else {}
        self.pacer = pacer or Pacer("arxiv", caps=caps, burst=1.0)
        self._timeout = timeout
        self._max_results = max_results
        self.cache: TtlCache[str, list[Paper]] = TtlCache(cache_entries, cache_seconds)
        self._inflight: dict[str, asyncio.Future[list[Paper]]] = {}

    async def papers_by(self, name: str, interest: str) -> list[Paper]:
        """Up to 5 of the recipient's papers; ExternalServiceError when arXiv fails."""
        author = strip_honorifics(name)
        return select_papers(author, interest, await self._by_author(author))

    async def _by_author(self, author: str) -> list[Paper]:
        key = _fold(author)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        if key in self._inflight:  # another task is asking arXiv for this author right now
            return await asyncio.shield(self._inflight[key])
        future: asyncio.Future[list[Paper]] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            papers = await self._query(author)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(papers)
        self.cache.put(key, own_recent(author, papers))
        return papers

    def _arxiv(self) -> arxiv.Client:
        """The package's client, imported and built on first use (not at start-up; the first
        call runs in a thread so the import does not hold the event loop)."""
        if self._client is None:
            import arxiv

            self._client = arxiv.Client(page_size=self._max_results, delay_seconds=0, num_retries=0)
            self._client.query_url_format = self._api_url + "?{}"
        return self._client

    async def _query(self, author: str) -> list[Paper]:
        client = self._client if self._client is not None else await asyncio.to_thread(self._arxiv)
        import arxiv  # loaded by _arxiv
        from arxiv import _feed  # the package's Atom parser (arxiv>=4)

        search = arxiv.Search(
            query=f'au:"{author}"',
            max_results=self._max_results,
            sort_by=arxiv.SortCriterion.SubmittedDate,
        )
        url = client._format_url(search, 0, self._max_results)
        reservation = await self.pacer.acquire(Cost())
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
