"""Web search through Exa (``exa_py.AsyncExa``), its failures judged by one table.

The SDK raises a plain ``ValueError("Request failed with status code N: …")`` for HTTP errors,
so the status is read from the SDK's message (its only carrier): 408/5xx, timeouts and
connection errors are "upstream unavailable", other 4xx "upstream rejected". Calls go
through the Exa pacer (SCRIBE_EXA_REQUESTS_PER_MINUTE, at most a second's worth at once): Exa
sends no rate-limit headers, so a 429 is waited out for a second and sent again, and a 401/403
pauses search. The SDK is loaded by the first search, not at start (``scribe.clients.sdk``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from scribe.clients.sdk import LazySdk
from scribe.providers.account import Account, Timer
from scribe.providers.buckets import Cost
from scribe.providers.calls import Refusal, send_paced

if TYPE_CHECKING:
    from exa_py import AsyncExa
    from exa_py.api import Result, SearchResponse

log = logging.getLogger(__name__)

_STATUS = re.compile(r"status code (\d{3})")  # a literal and a fixed count: linear


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One search result with the text Exa returned for it."""

    url: str
    title: str
    text: str
    published: str | None = None


EXA_429_WAIT_SECONDS = 1.0  # Exa sends no reset time; its limits are per second


def judge_exa_error(exc: Exception) -> Refusal | None:
    """Exa's error table (None: not the SDK's or the transport's error): timeouts, connection
    errors, 408 and 5xx retried, then "upstream unavailable"; 429 waited out; 401/403 pause
    search; another status or an unreadable failure is "upstream rejected"."""
    from exa_py.errors import ExaTimeoutError  # loaded: a search failed

    if isinstance(exc, ExaTimeoutError | httpx.TimeoutException):
        return Refusal(retryable=True, message="search timed out")
    if isinstance(exc, httpx.TransportError):
        return Refusal(retryable=True, message=f"search connection failed: {type(exc).__name__}")
    if not isinstance(exc, ValueError | httpx.HTTPError):
        return None
    match = _STATUS.search(str(exc))
    if match is None:
        return Refusal(message=f"search failed: {str(exc)[:200]}")
    status = int(match.group(1))
    if status == 429:
        return Refusal(rate_limited=True, retry_after=EXA_429_WAIT_SECONDS)
    if status in (401, 403):
        return Refusal(pause=f"HTTP {status}", hint="check EXA_API_KEY")
    message = f"search returned HTTP {status}"
    return Refusal(retryable=status == 408 or status >= 500, message=message)


class ExaSearch:
    """Exa behind a small interface: ``search(query) -> hits``."""

    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        timeout: float = 20.0,
        pacer: Account | None = None,
        max_retries: int = 0,
    ) -> None:
        self.timeout = timeout  # each search's, read when it is sent

        def build() -> AsyncExa:
            from exa_py import AsyncExa

            return AsyncExa(api_key=api_key, api_base=base_url, timeout=timeout)

        self._sdk = LazySdk(build)
        self._pacer = pacer or Account("exa")
        self._max_retries = max_retries

    async def search(
        self,
        query: str,
        *,
        num_results: int = 5,
        max_characters: int = 4000,
        system_prompt: str | None = None,
        timer: Timer | None = None,
    ) -> list[SearchHit]:
        """Run one query (``timer``: the calling step's, held while waiting for the account);
        UpstreamUnavailable / UpstreamRejected on failure."""
        exa = await self._sdk.get()

        async def send() -> tuple[SearchResponse[Result], None, None]:
            response = await exa.search(
                query,
                num_results=num_results,
                contents={"text": {"max_characters": max_characters}},
                system_prompt=system_prompt,
                timeout=self.timeout,
            )
            return response, None, None

        response = await send_paced(
            self._pacer, Cost(), send, judge_exa_error, max_retries=self._max_retries, timer=timer
        )
        return [
            SearchHit(
                url=result.url,
                title=result.title or "",
                text=(result.text or "").strip(),
                published=result.published_date,
            )
            for result in response.results
            if result.url
        ]

    async def aclose(self) -> None:
        """Close the SDK's HTTP client (if a search opened one)."""
        if (exa := self._sdk.built) is not None:
            await exa.aclose()
