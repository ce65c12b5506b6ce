"""Resume PDFs: download from an allow-listed host (SSRF-guarded, size-capped), then read the
text in a separate, resource-limited process (``pdf_child.py``).

pypdf is pure Python and trusts its input: a 31 KB PDF whose content stream inflates to 10 MB of
text operators cost two minutes of CPU, and three such requests took the service past its
systemd ``MemoryMax``. So parsing never runs in the service process: each parse is a child
process with a hard CPU-time and address-space limit (``resource.setrlimit``), a page and a text
cap, and a wall-clock deadline, and at most ``SCRIBE_PDF_PARSES`` run at once per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from scribe.clients.fetch import download
from scribe.errors import FetchRefused, InvalidRequest, PdfTooExpensive

log = logging.getLogger(__name__)

MAX_PDF_BYTES = 10 * 1024 * 1024
MAX_TEXT_CHARS = 20_000
CHILD = Path(__file__).with_name("pdf_child.py")
WALL_SECONDS_PER_CPU_SECOND = 3  # the child may wait for a shared CPU core, but not forever
STARTUP_SECONDS = 10  # interpreter start on a loaded Raspberry Pi


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


@dataclass(slots=True)
class PdfParser:
    """Parses PDFs in child processes, at most ``concurrency`` at a time."""

    limits: PdfLimits = field(default_factory=PdfLimits)
    concurrency: int = 1
    _slots: asyncio.Semaphore | None = None

    async def text(self, data: bytes) -> str:
        """The PDF's text; InvalidRequest for an unusable file, PdfTooExpensive past a limit."""
        if not data.startswith(b"%PDF"):
            raise InvalidRequest("The file is not a PDF.")
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        async with self._slots:
            return await self._run_child(data)

    async def _run_child(self, data: bytes) -> str:
        limits = self.limits
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
) -> str:
    """Download the resume at ``url`` and return its text (InvalidRequest for a bad file or
    URL, FetchRefused past the cap or for a refused address, PdfTooExpensive past a limit)."""
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
    return await reader.text(page.body)
