"""Outbound page and file fetching over httpx, behind the SSRF rule, size- and time-capped.

``GuardedTransport`` resolves each request's host, checks the address with ``AddressPolicy`` and
sends the request to that very address (Host header and TLS SNI keep the name), so every
redirect hop is checked on the address actually connected to. Main text is extracted with
trafilatura (see docs/architecture.md: it scored best among open-source extractors on public
benchmarks and drops navigation, footers and cookie banners that would pollute the composer's
prompt), in a child process (``scribe.clients.extract``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass

import httpx

from scribe.clients.extract import TextExtractor
from scribe.clients.netguard import AddressPolicy
from scribe.errors import FetchRefused

log = logging.getLogger(__name__)

MAX_PAGE_BYTES = 2_000_000
MAX_REDIRECTS = 5
USER_AGENT = "Mozilla/5.0 (compatible; ScribeBot/0.1; +https://github.com/scribe)"


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that connects only to addresses the policy permits."""

    def __init__(self, policy: AddressPolicy, *, verify: ssl.SSLContext | bool = True) -> None:
        self._policy = policy
        # No keep-alive: requests go to IP-addressed origins, and a pooled TLS connection must
        # never be reused for another host name served from the same address.
        self._inner = httpx.AsyncHTTPTransport(
            verify=verify, limits=httpx.Limits(max_keepalive_connections=0), retries=0
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise FetchRefused(f"refused a non-http(s) URL scheme: {url.scheme!r}")
        port = url.port or (443 if url.scheme == "https" else 80)
        address = await self._policy.resolve(url.host, port)
        extensions = dict(request.extensions)
        if url.scheme == "https":
            extensions["sni_hostname"] = url.host
        pinned = httpx.Request(
            request.method,
            url.copy_with(host=str(address)),
            headers=request.headers,  # keeps the original Host header
            stream=request.stream,
            extensions=extensions,
        )
        return await self._inner.handle_async_request(pinned)

    async def aclose(self) -> None:
        await self._inner.aclose()


def guarded_client(
    policy: AddressPolicy, *, timeout: float = 15.0, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    """An httpx client for untrusted URLs: SSRF-guarded, redirects followed hop by hop.
    ``verify``: httpx's (an ``ssl.SSLContext`` to share one, see ``scribe.deps.open_deps``)."""
    return httpx.AsyncClient(
        transport=GuardedTransport(policy, verify=verify),
        timeout=httpx.Timeout(timeout, connect=5.0),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )


@dataclass(frozen=True, slots=True)
class Download:
    """A fetched body and the final URL after redirects."""

    url: str
    content_type: str
    body: bytes


async def download(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    deadline: float,
    follow_redirects: bool = True,
) -> Download:
    """GET ``url`` with a total time limit and a size cap (FetchRefused past either cap).

    Raises httpx.HTTPError for transport failures and non-2xx answers.
    """
    try:
        # httpx.InvalidURL is not an httpx.HTTPError: callers catching only those would see a
        # URL from a search result or a request body (control characters, bad port) as a crash.
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise FetchRefused(f"invalid URL: {exc}") from exc
    try:
        async with asyncio.timeout(deadline):
            async with client.stream("GET", parsed, follow_redirects=follow_redirects) as response:
                response.raise_for_status()
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise FetchRefused(f"response is larger than {max_bytes} bytes")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > max_bytes:
                        raise FetchRefused(f"response is larger than {max_bytes} bytes")
                return Download(
                    str(response.url), response.headers.get("content-type", ""), bytes(body)
                )
    except TimeoutError as exc:
        raise httpx.ReadTimeout(f"fetch took longer than {deadline} s") from exc


@dataclass(frozen=True, slots=True)
class PageText:
    """Text read from one page and how it was read."""

    url: str
    text: str
    method: str  # "httpx" | "browser"
    seconds: float


class PageFetcher:
    """Static page reader: httpx + trafilatura (in child processes), with the SSRF guard and
    caps."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        extractor: TextExtractor | None = None,
        *,
        max_bytes: int = MAX_PAGE_BYTES,
    ) -> None:
        self._client = client
        self._extractor = extractor or TextExtractor()
        self._max_bytes = max_bytes

    async def read(self, url: str, *, deadline: float = 15.0) -> PageText:
        """Download ``url`` and extract its main text (empty for non-HTML or thin pages)."""
        started = time.monotonic()
        page = await download(self._client, url, max_bytes=self._max_bytes, deadline=deadline)
        text = ""
        if "html" in page.content_type or not page.content_type:
            html = page.body.decode("utf-8", errors="replace")
            text = await self._extractor.text(html, page.url)
        elif page.content_type.startswith("text/"):
            text = page.body.decode("utf-8", errors="replace").strip()
        return PageText(page.url, text, "httpx", time.monotonic() - started)
