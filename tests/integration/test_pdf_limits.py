"""PDF text is read in a resource-limited child process: limits end in PdfTooExpensive (422),
unreadable files in InvalidRequest (400), and a good resume still reads under tight limits."""

from __future__ import annotations

import asyncio
import zlib

import pytest

from scribe.clients.pdf import PdfLimits, PdfParser
from scribe.errors import InvalidRequest, PdfTooExpensive
from tests.fakes.pdf import RESUME_LINES, build_hostile_pdf, build_pdf, one_page

TIGHT = PdfLimits(cpu_seconds=1, memory_mb=160, max_pages=2, max_chars=200)


def memory_bomb() -> bytes:
    """200 KB that inflates to a 200 MB text string."""
    stream = zlib.compress(b"BT (" + b"A" * (200 * 1024 * 1024) + b") Tj ET", 9)
    return one_page(stream, b" /Filter /FlateDecode")


async def test_a_resume_reads_under_tight_limits() -> None:
    text = await PdfParser(TIGHT).text(build_pdf(RESUME_LINES))
    assert text.startswith("Alex Student") and len(text) <= TIGHT.max_chars


async def test_a_cpu_bomb_stops_at_the_cpu_limit() -> None:
    with pytest.raises(PdfTooExpensive, match="1 s of CPU time"):
        await PdfParser(TIGHT).text(build_hostile_pdf(10))


async def test_a_decompression_bomb_stops_at_the_memory_limit() -> None:
    limits = PdfLimits(cpu_seconds=20, memory_mb=160)
    with pytest.raises(PdfTooExpensive, match="160 MB of memory"):
        await PdfParser(limits).text(memory_bomb())


async def test_unreadable_files_are_invalid_requests_not_limits() -> None:
    reader = PdfParser(TIGHT)
    with pytest.raises(InvalidRequest, match="not a PDF"):
        await reader.text(b"<html>")
    with pytest.raises(InvalidRequest, match="scanned"):
        await reader.text(build_pdf([]))
    with pytest.raises(InvalidRequest, match="could not be read") as caught:
        await reader.text(b"%PDF-1.4\n garbage")
    assert not isinstance(caught.value, PdfTooExpensive)


async def test_parses_beyond_the_concurrency_setting_wait_for_a_slot() -> None:
    running, most = 0, 0
    release = asyncio.Event()
    entered = asyncio.Event()

    class Recording(PdfParser):
        async def _run_child(self, data: bytes, limits: PdfLimits) -> str:  # the child stands still
            nonlocal running, most
            running += 1
            most = max(most, running)
            entered.set()
            await release.wait()
            running -= 1
            return "text"

    parser = Recording(TIGHT, concurrency=2)
    parses = [asyncio.create_task(parser.text(b"%PDF-1.4")) for _ in range(5)]
    await entered.wait()
    for _ in range(10):  # let every task reach the semaphore
        await asyncio.sleep(0)
    assert running == 2
    release.set()
    assert await asyncio.gather(*parses) == ["text"] * 5
    assert most == 2
