"""Resume PDFs: download from an allow-listed host (SSRF-guarded, size-capped), then read the
text in a separate, resource-limited process (``pdf_child.py``).

pypdf is pure Python and trusts its input: a 31 KB PDF whose content stream inflates to 10 MB of
text operators cost two minutes of CPU, and three such requests took the service past its
systemd ``MemoryMax``. So parsing never runs in the service process: each parse is a child
process with a hard CPU-time and address-space limit (``resource.setrlimit``), a page and a text
cap, and a wall-clock deadline, and at most ``SCRIBE_PDF_PARSES`` run at once per process.

Parses that find every slot taken wait at most ``SCRIBE_PDF_WAIT_SECONDS``, at most
``PDF_MAX_WAITING`` of them, one per user: past that the answer is 429 with ``Retry-After`` (the
time until the oldest running parse reaches its deadline), not a wait behind hostile files. A
child's address space is what ``SCRIBE_MEMORY_BUDGET_MB`` leaves after the service's current use
(``scribe.clients.memory``), ``MEMORY_HEADROOM_MB`` and the parses already running, at most
``SCRIBE_PDF_MEMORY_MB``; with less than ``MIN_PARSE_MEMORY_MB`` left the parse is refused (429).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from scribe.clients.fetch import download
from scribe.clients.memory import MemoryUse, memory_use
from scribe.errors import FetchRefused, InvalidRequest, PdfTooExpensive, QuotaExceeded

if TYPE_CHECKING:
    from scribe.settings import Settings

log = logging.getLogger(__name__)

MAX_PDF_BYTES = 10 * 1024 * 1024
MAX_TEXT_CHARS = 20_000
CHILD = Path(__file__).with_name("pdf_child.py")
WALL_SECONDS_PER_CPU_SECOND = 3  # the child may wait for a shared CPU core, but not forever
STARTUP_SECONDS = 10  # interpreter start on a loaded Raspberry Pi
# Parses waiting for a slot, per process: each holds its downloaded PDF (up to MAX_PDF_BYTES).
PDF_MAX_WAITING = 4
# Kept free under the memory budget for the service's own growth while a parse runs.
MEMORY_HEADROOM_MB = 64
# Less than this left for a child and the parse is refused: an interpreter with pypdf reads a
# small text resume in 48 MB of address space (x86_64); real resumes carry fonts and images.
MIN_PARSE_MEMORY_MB = 96


@dataclass(frozen=True, slots=True)
class PdfLimits:
    """What one parse may use."""

    cpu_seconds: int = 5
    memory_mb: int = 512
    max_pages: int = 10
    max_chars: int = MAX_TEXT_CHARS

    @property
    def deadline(self) -> float:
        """Wall-clock seconds before the child is killed."""
        return self.cpu_seconds * WALL_SECONDS_PER_CPU_SECOND + STARTUP_SECONDS


def _too_expensive(limits: PdfLimits, what: str) -> PdfTooExpensive:
    log.info("pdf parse refused: it needed more than %s", what)
    return PdfTooExpensive(
        f"The PDF is too expensive to read (it needed more than {what}); "
        f"please upload a simpler text-based PDF of at most {limits.max_pages} pages."
    )


@dataclass(frozen=True, slots=True)
class MemoryBudget:
    """The memory the whole service may use, its children included (``SCRIBE_MEMORY_BUDGET_MB``:
    the systemd unit's ``MemoryMax``); the system's own limit when that is lower."""

    budget_mb: int
    measure: Callable[[], MemoryUse | None] = memory_use

    def left_mb(self, granted_mb: int) -> int:
        """What a new child may have: the budget less the service's use now, the headroom and
        ``granted_mb`` (children already running; where the use is the cgroup's, which counts
        them too, this errs on the safe side)."""
        use = self.measure()
        budget = self.budget_mb
        if use is not None and use.limit is not None:
            budget = min(budget, use.limit >> 20)
        used_mb = 0 if use is None else use.used >> 20
        return budget - used_mb - MEMORY_HEADROOM_MB - granted_mb


@dataclass(slots=True)
class PdfParser:
    """Parses PDFs in child processes: at most ``concurrency`` at a time, the others waiting at
    most ``wait_seconds`` (at most PDF_MAX_WAITING of them, one per owner), each child sized from
    ``budget`` (or ``limits.memory_mb`` alone without one)."""

    limits: PdfLimits = field(default_factory=PdfLimits)
    concurrency: int = 1
    wait_seconds: float = 5.0
    budget: MemoryBudget | None = None
    _slots: asyncio.Semaphore | None = None
    _waiting: int = 0
    _owners: set[str] = field(default_factory=set)
    _started: list[float] = field(default_factory=list)  # monotonic start of each running parse
    _granted_mb: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> PdfParser:
        """The parser the ``SCRIBE_PDF_*`` and ``SCRIBE_MEMORY_BUDGET_MB`` settings describe."""
        budget_mb = settings.scribe_memory_budget_mb
        return cls(
            PdfLimits(
                cpu_seconds=settings.scribe_pdf_cpu_seconds,
                memory_mb=settings.scribe_pdf_memory_mb,
                max_pages=settings.scribe_pdf_max_pages,
            ),
            concurrency=settings.scribe_pdf_parses,
            wait_seconds=settings.scribe_pdf_wait_seconds,
            budget=MemoryBudget(budget_mb) if budget_mb else None,
        )

    async def text(self, data: bytes, *, owner: str | None = None) -> str:
        """The PDF's text; InvalidRequest for an unusable file, PdfTooExpensive past a limit,
        QuotaExceeded (with ``retry_after``) when no slot or memory is free in time or
        ``owner`` already has a parse waiting or running."""
        if not data.startswith(b"%PDF"):
            raise InvalidRequest("The file is not a PDF.")
        if owner is not None and owner in self._owners:
            log.info("pdf parse refused: its owner already has one waiting or running")
            raise QuotaExceeded(
                "A resume of yours is already being read; wait for it to finish.",
                retry_after=self.limits.deadline,
            )
        if owner is not None:
            self._owners.add(owner)
        try:
            async with self._slot():
                limits = self._sized_limits()
                self._granted_mb += limits.memory_mb
                try:
                    return await self._run_child(data, limits)
                finally:
                    self._granted_mb -= limits.memory_mb
        finally:
            if owner is not None:
                self._owners.discard(owner)

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        if self._slots.locked():
            if self._waiting >= PDF_MAX_WAITING:
                raise self._busy(f"{PDF_MAX_WAITING} parses are already waiting")
            self._waiting += 1
            try:
                async with asyncio.timeout(self.wait_seconds):
                    await self._slots.acquire()
            except TimeoutError:
                raise self._busy(f"no slot within {self.wait_seconds:g} s") from None
            finally:
                self._waiting -= 1
        else:
            await self._slots.acquire()
        started = time.monotonic()
        self._started.append(started)
        try:
            yield
        finally:
            self._started.remove(started)
            self._slots.release()

    def _busy(self, why: str) -> QuotaExceeded:
        now = time.monotonic()
        first_free = min((start + self.limits.deadline for start in self._started), default=now)
        wait = max(1, math.ceil(first_free - now))
        log.info("pdf parse refused: %s", why)
        return QuotaExceeded(
            f"The server is busy reading other resumes; try again in {wait} s.", retry_after=wait
        )

    def _sized_limits(self) -> PdfLimits:
        if self.budget is None:
            return self.limits
        left = self.budget.left_mb(self._granted_mb)
        if left < MIN_PARSE_MEMORY_MB:
            log.warning(
                "pdf parse refused: %d MB of the %d MB memory budget left (at least %d needed)",
                left,
                self.budget.budget_mb,
                MIN_PARSE_MEMORY_MB,
            )
            raise QuotaExceeded(
                "The server is short of memory to read a resume now; try again in a minute.",
                retry_after=60,
            )
        return dataclasses.replace(self.limits, memory_mb=min(self.limits.memory_mb, left))

    async def _run_child(self, data: bytes, limits: PdfLimits) -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",  # no user site or PYTHON* variables: only the venv and this file
            str(CHILD),
            str(limits.cpu_seconds),
            str(limits.memory_mb * 1024 * 1024),
            str(limits.max_pages),
            str(limits.max_chars),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            async with asyncio.timeout(limits.deadline):
                output, _ = await process.communicate(data)
        except TimeoutError:
            raise _too_expensive(limits, f"{limits.deadline:.0f} s to read") from None
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if process.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            raise _too_expensive(limits, f"{limits.cpu_seconds} s of CPU time")
        try:
            answer = json.loads(output)
        except ValueError:
            log.warning("pdf parse: the child exited %s without an answer", process.returncode)
            raise _too_expensive(limits, f"{limits.memory_mb} MB of memory") from None
        if "text" in answer:
            return str(answer["text"])
        if answer.get("limit"):
            raise _too_expensive(limits, f"{limits.memory_mb} MB of memory")
        raise InvalidRequest(str(answer["error"]))


def check_pdf_url(url: str, allowed_hosts: list[str]) -> None:
    """InvalidRequest unless ``url`` is https/http on an allow-listed host."""
    try:
        # urlsplit raises ValueError on a malformed IPv6 literal ("http://[::1/x", "[127.0.0.1]").
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018  (a bad port is a ValueError too, raised on access)
    except ValueError as exc:
        raise InvalidRequest("pdf_url is not a valid URL.") from exc
    if parts.scheme not in ("https", "http") or not host:
        raise InvalidRequest("pdf_url must be an http(s) URL.")
    if host not in allowed_hosts:
        raise InvalidRequest(f"pdf_url host {host!r} is not allowed.")


async def resume_text(
    client: httpx.AsyncClient,
    url: str,
    allowed_hosts: list[str],
    reader: PdfParser,
    *,
    deadline: float = 30.0,
    owner: str | None = None,
) -> str:
    """Download the resume at ``url`` and return its text (InvalidRequest for a bad file or
    URL, FetchRefused past the cap or for a refused address, PdfTooExpensive past a limit,
    QuotaExceeded when ``reader`` is busy or ``owner`` has a parse under way)."""
    check_pdf_url(url, allowed_hosts)
    try:
        # No redirects: every hop would have to be on the allow-list too.
        page = await download(
            client, url, max_bytes=MAX_PDF_BYTES, deadline=deadline, follow_redirects=False
        )
    except FetchRefused as exc:
        raise InvalidRequest(f"The PDF could not be downloaded: {exc}") from exc
    except httpx.HTTPError as exc:
        raise InvalidRequest(f"The PDF could not be downloaded ({type(exc).__name__}).") from exc
    return await reader.text(page.body, owner=owner)
