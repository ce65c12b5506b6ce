"""Pages that need JavaScript: one shared system Chromium driven by Playwright.

Launched lazily on first use, a fresh context per page, images/fonts/media blocked, at most
``pages`` pages at a time, closed after ``idle_seconds`` without use. All its traffic goes through
``FilteringProxy`` (the SSRF rule). Without a Chromium binary the browser path is unavailable and
callers fall back to static text (with a notice in the log and metadata).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from typing import TYPE_CHECKING

from scribe.clients.extract import TextExtractor
from scribe.clients.fetch import MAX_PAGE_BYTES, PageText
from scribe.clients.netguard import AddressPolicy
from scribe.clients.proxy import REFUSED_HEADER, FilteringProxy
from scribe.errors import FetchRefused, NonPublicAddress

if TYPE_CHECKING:
    from playwright.async_api import Browser, Playwright, Route
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api._context_manager import PlaywrightContextManager

log = logging.getLogger(__name__)

LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    # Memory (a 1 GB board): no zygote processes and no GPU process (the compositor runs in the
    # browser process), and a cap on each renderer's JavaScript heap so one heavy page fails
    # (read as a failed fetch) instead of growing without bound.
    "--no-zygote",  # needs --no-sandbox
    "--in-process-gpu",
    "--js-flags=--max-old-space-size=128",
    "--disable-quic",  # UDP would not go through the proxy
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
]
# Debian's chromium-headless-shell: the real binary. Its /usr/bin entry is a shell wrapper that
# does not exec, which would leave a shell between Playwright and the browser.
DEBIAN_HEADLESS_SHELL = "/usr/lib/chromium/chromium-headless-shell"
_BLOCKED_TYPES = {"image", "font", "media"}
_ALLOWED_SCHEMES = ("http:", "https:", "data:", "blob:")


def find_chromium(configured: str | None) -> str | None:
    """The Chromium binary to use: SCRIBE_CHROMIUM_PATH, else the headless shell (about half
    the memory of the full browser), else chromium on PATH or /usr/bin/chromium; None when none
    exists."""
    if configured:
        return configured if os.path.exists(configured) else None
    if os.access(DEBIAN_HEADLESS_SHELL, os.X_OK):
        return DEBIAN_HEADLESS_SHELL
    for candidate in ("chromium-headless-shell", "chromium"):
        found = shutil.which(candidate)
        if found:
            return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


def _playwright_error() -> type[PlaywrightError]:
    """Playwright's error class. The package is imported on the first page that needs a browser
    (by ``_load_playwright``), never at start-up; ``except`` clauses ask for the class here."""
    from playwright.async_api import Error

    return Error


def _load_playwright() -> PlaywrightContextManager:
    """Import Playwright (run in a thread: the import would hold the event loop) and return its
    starter."""
    from playwright.async_api import async_playwright

    return async_playwright()


def launch_args(pages: int) -> list[str]:
    """Chromium's command line for a pool of ``pages`` concurrent pages: one renderer each."""
    return [*LAUNCH_ARGS, f"--renderer-process-limit={pages}"]


async def _route(route: Route) -> None:
    request = route.request
    if request.resource_type in _BLOCKED_TYPES or not request.url.startswith(_ALLOWED_SCHEMES):
        await route.abort("blockedbyclient")
    else:
        await route.continue_()


class BrowserPool:
    """The one shared browser of a process."""

    def __init__(
        self,
        policy: AddressPolicy,
        executable: str | None,
        *,
        pages: int = 1,
        idle_seconds: float = 60.0,
        max_chars: int = MAX_PAGE_BYTES,
        extractor: TextExtractor | None = None,
    ) -> None:
        self.executable = executable
        self._max_chars = max_chars
        self._extractor = extractor or TextExtractor()
        self._policy = policy
        self._pages = pages
        self._semaphore = asyncio.Semaphore(pages)
        self._idle_seconds = idle_seconds
        self._lock = asyncio.Lock()
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._proxy: FilteringProxy | None = None
        self._in_use = 0
        self._last_used = time.monotonic()
        self._idle_task: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        """Whether a Chromium binary was found."""
        return self.executable is not None

    @property
    def running(self) -> bool:
        """Whether the browser process is up right now."""
        return self._browser is not None

    async def _ensure(self) -> Browser:
        async with self._lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            await self._shutdown()
            assert self.executable is not None
            proxy = FilteringProxy(self._policy)
            await proxy.start()
            self._proxy = proxy
            starter = await asyncio.to_thread(_load_playwright)
            self._playwright = await starter.start()
            self._browser = await self._playwright.chromium.launch(
                executable_path=self.executable,
                args=launch_args(self._pages),
                proxy={"server": proxy.url, "bypass": "<-loopback>"},
            )
            if self._idle_task is None or self._idle_task.done():
                self._idle_task = asyncio.create_task(self._close_when_idle(), name="browser-idle")
                self._idle_task.add_done_callback(_log_failure)
            log.info("launched Chromium %s", self.executable)
            return self._browser

    async def read(self, url: str, *, deadline: float = 20.0) -> PageText:
        """Render ``url`` (SSRF-guarded) and extract its main text."""
        if not url.startswith(("http://", "https://")):
            raise FetchRefused("refused a non-http(s) URL")
        if self.executable is None:
            raise FetchRefused("no Chromium binary is installed")
        async with self._semaphore:
            self._in_use += 1
            started = time.monotonic()
            try:
                browser = await self._ensure()
                html, final_url = await asyncio.wait_for(
                    self._render(browser, url, deadline), timeout=deadline + 5
                )
            except _playwright_error() as exc:
                raise FetchRefused(f"browser failed: {exc.message[:200]}") from exc
            finally:
                self._in_use -= 1
                self._last_used = time.monotonic()
        if len(html) > self._max_chars:  # a script can build a DOM far larger than any response
            raise FetchRefused(f"rendered page is larger than {self._max_chars} characters")
        text = await self._extractor.text(html, final_url)
        return PageText(final_url, text, "browser", time.monotonic() - started)

    async def _render(self, browser: Browser, url: str, deadline: float) -> tuple[str, str]:
        context = await browser.new_context(service_workers="block", java_script_enabled=True)
        try:
            await context.route("**/*", _route)
            page = await context.new_page()
            try:
                response = await page.goto(url, wait_until="networkidle", timeout=deadline * 1000)
            except _playwright_error() as exc:
                raise FetchRefused(f"browser could not load the page: {exc.message[:200]}") from exc
            if response is not None and response.headers.get(REFUSED_HEADER):
                raise NonPublicAddress("refused to connect to a non-public address")
            return await page.content(), page.url
        finally:
            await context.close()

    async def _close_when_idle(self) -> None:
        while self._browser is not None:
            await asyncio.sleep(min(5.0, self._idle_seconds))
            idle = time.monotonic() - self._last_used
            if self._in_use == 0 and idle >= self._idle_seconds:
                async with self._lock:
                    if self._in_use == 0:
                        log.info("closing idle Chromium")
                        await self._shutdown()

    async def _shutdown(self) -> None:
        browser, self._browser = self._browser, None
        playwright, self._playwright = self._playwright, None
        proxy, self._proxy = self._proxy, None
        if browser is not None:
            with contextlib.suppress(_playwright_error()):
                await browser.close()
        if playwright is not None:
            await playwright.stop()
        if proxy is not None:
            await proxy.close()

    async def close(self) -> None:
        """Close the browser, its driver and the proxy."""
        # Under the lock: the idle task may be half-way through its own shutdown, which must
        # finish rather than be cancelled (it would leak the proxy's socket).
        async with self._lock:
            task, self._idle_task = self._idle_task, None
            if task is not None:
                task.cancel()
            await self._shutdown()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("browser idle task failed", exc_info=task.exception())
