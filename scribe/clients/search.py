"""Web search through Exa's ``/search`` endpoint, its failures judged by one table.

One POST over httpx: the ``exa_py`` SDK (with the ``openai``, ``requests`` and the clients of
Exa's other products it imports) would cost the service about 33 MiB for one request and one
JSON answer. Timeouts, connection errors, 408 and 5xx are "upstream unavailable", other 4xx
"upstream rejected". Calls go through the Exa pacer (SCRIBE_EXA_REQUESTS_PER_MINUTE, at most a
second's worth at once): Exa sends no rate-limit headers, so a 429 is waited out for a second
and sent again, and a 401/403 pauses search.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from scribe.clients.pacing import Cost, Pacer, Refusal, send_paced
from scribe.errors import UpstreamRejected

log = logging.getLogger(__name__)

USER_AGENT = "scribe (exa /search over httpx)"


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One search result with the text Exa returned for it."""

    url: str
    title: str
    text: str
    published: str | None = None


EXA_429_WAIT_SECONDS = 1.0  # Exa sends no reset time; its limits are per second


def judge_exa_error(exc: Exception) -> Refusal | None:
    """Exa's error table (None: not a transport or HTTP failure): timeouts, connection errors,
    408 and 5xx retried, then "upstream unavailable"; 429 waited out; 401/403 pause search;
    another status is "upstream rejected" (as is an unreadable answer, raised by ``_hits``)."""
    if isinstance(exc, httpx.TimeoutException):
        return Refusal(retryable=True, message="search timed out")
    if isinstance(exc, httpx.TransportError):
        return Refusal(retryable=True, message=f"search connection failed: {type(exc).__name__}")
    if not isinstance(exc, httpx.HTTPStatusError):
        return None
    status = exc.response.status_code
    if status == 429:
        return Refusal(rate_limited=True, retry_after=EXA_429_WAIT_SECONDS)
    if status in (401, 403):
        return Refusal(pause=f"HTTP {status}", hint="check EXA_API_KEY")
    message = f"search returned HTTP {status}"
    return Refusal(retryable=status == 408 or status >= 500, message=message)


def _hits(response: httpx.Response, provider: str) -> list[SearchHit]:
    """The results of Exa's answer; UpstreamRejected when it has none to read."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list):
        raise UpstreamRejected("search answered without a list of results", provider=provider)
    hits = []
    for result in results:
        if not isinstance(result, dict) or not isinstance(result.get("url"), str):
            continue
        published = result.get("publishedDate")
        hits.append(
            SearchHit(
                url=result["url"],
                title=str(result.get("title") or ""),
                text=str(result.get("text") or "").strip(),
                published=published if isinstance(published, str) else None,
            )
        )
    return [hit for hit in hits if hit.url]


class ExaSearch:
    """Exa behind a small interface: ``search(query) -> hits``."""

    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        timeout: float = 20.0,
        pacer: Pacer | None = None,
        max_retries: int = 0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"x-api-key": api_key, "User-Agent": USER_AGENT},
            verify=verify,
        )
        self._pacer = pacer or Pacer("exa")
        self._max_retries = max_retries

    async def search(
        self,
        query: str,
        *,
        num_results: int = 5,
        max_characters: int = 4000,
        system_prompt: str | None = None,
    ) -> list[SearchHit]:
        """Run one query; UpstreamUnavailable / UpstreamRejected on failure."""
        body: dict[str, Any] = {
            "query": query,
            "numResults": num_results,
            "contents": {"text": {"maxCharacters": max_characters}},
        }
        if system_prompt is not None:
            body["systemPrompt"] = system_prompt

        async def send() -> tuple[list[SearchHit], None, None]:
            response = await self._http.post("/search", json=body, timeout=self.timeout)
            response.raise_for_status()
            return _hits(response, self._pacer.name), None, None

        return await send_paced(
            self._pacer, Cost(), send, judge_exa_error, max_retries=self._max_retries
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()
