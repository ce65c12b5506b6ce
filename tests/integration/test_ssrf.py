"""SSRF guard: the same refusals through httpx and through Chromium (real fetches)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import httpx
import pytest

from scribe.clients.browser import BrowserPool, find_chromium
from scribe.clients.extract import TextExtractor
from scribe.clients.fetch import PageFetcher, guarded_client
from scribe.clients.proxy import FilteringProxy
from scribe.errors import FetchRefused
from tests.fakes.fixtures import fake_policy
from tests.fakes.services import JS_FACT, FakeServices

# As the app picks it: SCRIBE_CHROMIUM_PATH (CI runs these again with the full chromium), else
# the headless shell, else chromium.
CHROMIUM = find_chromium(os.environ.get("SCRIBE_CHROMIUM_PATH"))
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium binary (apt-get install chromium-headless-shell)"
)


@pytest.fixture
def other_loopback_port() -> Iterator[int]:
    """A listening loopback port the policy does not allow (stands in for a local service)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def refused_urls(fakes: FakeServices, port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/",  # loopback service
        f"http://localhost:{port}/",  # a name resolving to loopback
        "http://10.0.0.8/",
        "http://169.254.169.254/latest/meta-data/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        "http://intranet.test/",  # a name resolving to a private address
        f"http://public.test:{fakes.port}/site/redirect-private",  # public -> private redirect
        f"http://public.test:{fakes.port}/site/redirect-metadata",
    ]


async def test_httpx_refuses_private_destinations(
    fakes: FakeServices, other_loopback_port: int
) -> None:
    async with guarded_client(fake_policy(fakes.port)) as client:
        fetcher = PageFetcher(client)
        for url in refused_urls(fakes, other_loopback_port):
            with pytest.raises(FetchRefused):
                await fetcher.read(url)
        with pytest.raises(FetchRefused, match="scheme"):
            await client.get("file:///etc/passwd")
        page = await fetcher.read(f"http://public.test:{fakes.port}/site/static")
    assert "quantum widgets" in page.text


async def test_unparseable_url_is_refused_not_a_crash(fakes: FakeServices) -> None:
    """A search hit's URL httpx cannot parse (control character, bad port) is a refused fetch,
    which the scraper skips, not an exception that fails the whole step."""
    async with guarded_client(fake_policy(fakes.port)) as client:
        fetcher = PageFetcher(client)
        for url in (f"http://public.test:{fakes.port}/a\x7fb", "http://[::1/"):
            with pytest.raises(FetchRefused, match="invalid URL"):
                await fetcher.read(url)


async def test_httpx_caps_page_size(fakes: FakeServices) -> None:
    async with guarded_client(fake_policy(fakes.port)) as client:
        with pytest.raises(FetchRefused, match="larger than"):
            await PageFetcher(client).read(f"http://public.test:{fakes.port}/site/huge")


async def test_proxy_cuts_a_response_past_its_byte_cap(fakes: FakeServices) -> None:
    """Chromium's traffic is size-capped while streaming, like httpx's: the proxy stops relaying
    (and drops the connection) past the cap instead of passing the whole body through."""
    proxy = FilteringProxy(fake_policy(fakes.port), max_response_bytes=100_000)
    await proxy.start()
    try:
        async with httpx.AsyncClient(proxy=proxy.url, timeout=10) as client:
            small = await client.get(f"http://public.test:{fakes.port}/site/static")
            assert small.status_code == 200 and "quantum widgets" in small.text
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(f"http://public.test:{fakes.port}/site/huge")
    finally:
        await proxy.close()
    assert proxy.oversized == ["public.test"]


@pytest.mark.browser
@needs_chromium
async def test_chromium_refuses_a_page_past_the_size_cap(fakes: FakeServices) -> None:
    browser = BrowserPool(fake_policy(fakes.port), CHROMIUM, max_chars=1_000_000)
    try:
        with pytest.raises(FetchRefused):
            await browser.read(f"http://public.test:{fakes.port}/site/huge", deadline=10)
    finally:
        await browser.close()


@pytest.mark.browser
@needs_chromium
async def test_chromium_refuses_private_destinations(
    fakes: FakeServices, other_loopback_port: int
) -> None:
    browser = BrowserPool(fake_policy(fakes.port), CHROMIUM)
    try:
        for url in [*refused_urls(fakes, other_loopback_port), "https://10.0.0.8/"]:
            with pytest.raises(FetchRefused):
                await browser.read(url, deadline=5)
        with pytest.raises(FetchRefused):
            await browser.read("file:///etc/passwd")
    finally:
        await browser.close()
    assert not browser.running


@pytest.mark.browser
@needs_chromium
async def test_js_only_page_is_read_through_chromium(fakes: FakeServices) -> None:
    url = f"http://public.test:{fakes.port}/site/js-only"
    async with guarded_client(fake_policy(fakes.port)) as client:
        static = await PageFetcher(client).read(url)
    assert JS_FACT not in static.text
    browser = BrowserPool(fake_policy(fakes.port), CHROMIUM)
    try:
        page = await browser.read(url)
    finally:
        await browser.close()
    assert JS_FACT in page.text and page.method == "browser"


class _RawText(TextExtractor):
    """The page as it is: no child process between the render and the idle timer."""

    async def text(self, html: str, url: str | None = None) -> str:
        return html


@pytest.mark.browser
@needs_chromium
async def test_browser_closes_after_idling(fakes: FakeServices) -> None:
    browser = BrowserPool(fake_policy(fakes.port), CHROMIUM, idle_seconds=0.2, extractor=_RawText())
    try:
        await browser.read(f"http://public.test:{fakes.port}/site/static")
        assert browser.running
        for _ in range(50):
            if not browser.running:
                break
            await __import__("asyncio").sleep(0.1)
        assert not browser.running
    finally:
        await browser.close()
