"""The PDF parse slots: a busy slot is waited for at most SCRIBE_PDF_WAIT_SECONDS, by at most
PDF_MAX_WAITING parses and one per owner, then refused with Retry-After; each child's memory is
what the service's budget leaves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from scribe.clients.memory import MemoryUse
from scribe.clients.pdf import (
    MEMORY_HEADROOM_MB,
    MIN_PARSE_MEMORY_MB,
    PDF_MAX_WAITING,
    MemoryBudget,
    PdfLimits,
    PdfParser,
)
from scribe.errors import PdfTooExpensive, QuotaExceeded
from tests.fakes.pdf import RESUME_LINES, build_pdf, one_page

LIMITS = PdfLimits(cpu_seconds=2, memory_mb=512)  # deadline 16 s
PDF = b"%PDF-1.4"


class HeldParser(PdfParser):
    """A parser whose child stands still until released (the transport of the slot logic)."""

    def __init__(
        self, *, wait_seconds: float = 5.0, concurrency: int = 1, budget: MemoryBudget | None = None
    ) -> None:
        super().__init__(LIMITS, concurrency, wait_seconds, budget)
        self.release = asyncio.Event()
        self.running = asyncio.Event()
        self.memory: list[int] = []

    async def _run_child(self, data: bytes, limits: PdfLimits) -> str:
        self.memory.append(limits.memory_mb)
        self.running.set()
        await self.release.wait()
        return "text"


async def test_a_parse_that_finds_the_slot_taken_is_refused_with_retry_after() -> None:
    parser = HeldParser(wait_seconds=0)
    hostile = asyncio.create_task(parser.text(PDF, owner="mallory"))
    await parser.running.wait()
    with pytest.raises(QuotaExceeded, match="busy reading other resumes") as refused:
        await parser.text(PDF, owner="alice")
    assert refused.value.retry_after is not None
    assert 1 <= refused.value.retry_after <= LIMITS.deadline
    parser.release.set()
    assert await hostile == "text"
    assert await parser.text(PDF, owner="alice") == "text"  # the slot is free again


async def test_a_waiting_parse_gives_up_after_the_wait() -> None:
    parser = HeldParser(wait_seconds=0.05)
    hostile = asyncio.create_task(parser.text(PDF))
    await parser.running.wait()
    with pytest.raises(QuotaExceeded, match="try again in"):
        await parser.text(PDF)
    parser.release.set()
    await hostile


async def test_waiting_parses_are_bounded_and_one_per_owner() -> None:
    parser = HeldParser(wait_seconds=60)
    running = asyncio.create_task(parser.text(PDF, owner="u0"))
    await parser.running.wait()
    waiting = [asyncio.create_task(parser.text(PDF, owner=f"u{n}")) for n in range(1, 5)]
    for _ in range(10):  # let each reach the slot
        await asyncio.sleep(0)
    assert len(waiting) == PDF_MAX_WAITING
    with pytest.raises(QuotaExceeded, match="busy"):
        await parser.text(PDF, owner="u5")  # a fifth waiter is refused at once
    for owner in ("u0", "u3"):  # one running, one waiting: neither may queue another
        with pytest.raises(QuotaExceeded, match="already being read") as refused:
            await parser.text(PDF, owner=owner)
        assert refused.value.retry_after == LIMITS.deadline
    parser.release.set()
    assert await asyncio.gather(running, *waiting) == ["text"] * 5
    assert await parser.text(PDF, owner="u3") == "text"  # done: the owner may parse again


def budget(used_mb: int, limit_mb: int | None = None) -> Callable[[], MemoryUse]:
    limit = None if limit_mb is None else limit_mb << 20
    return lambda: MemoryUse(used=used_mb << 20, limit=limit)


@pytest.mark.parametrize(
    ("measure", "child_mb"),
    [
        (budget(137), 512),  # idle: the configured cap
        (budget(419), 750 - 419 - MEMORY_HEADROOM_MB),  # under load: what is left
        (budget(200, limit_mb=600), 600 - 200 - MEMORY_HEADROOM_MB),  # a lower system limit
        (lambda: None, 512),  # nothing measurable: the budget alone
    ],
)
async def test_the_child_gets_what_the_budget_leaves(
    measure: Callable[[], MemoryUse | None], child_mb: int
) -> None:
    parser = HeldParser(budget=MemoryBudget(750, measure))
    parser.release.set()
    assert await parser.text(PDF) == "text"
    assert parser.memory == [child_mb]


async def test_a_second_child_gets_what_the_first_leaves() -> None:
    parser = HeldParser(concurrency=2, budget=MemoryBudget(1000, budget(137)))
    first = asyncio.create_task(parser.text(PDF))
    await parser.running.wait()
    second = asyncio.create_task(parser.text(PDF))
    for _ in range(10):  # let it reach its child while the first still runs
        await asyncio.sleep(0)
    assert parser.memory == [512, 1000 - 137 - MEMORY_HEADROOM_MB - 512]
    parser.release.set()
    assert [await first, await second] == ["text", "text"]


async def test_too_little_memory_left_refuses_the_parse() -> None:
    used = 750 - MEMORY_HEADROOM_MB - MIN_PARSE_MEMORY_MB + 1
    parser = HeldParser(budget=MemoryBudget(750, budget(used)))
    with pytest.raises(QuotaExceeded, match="short of memory") as refused:
        await parser.text(PDF)
    assert refused.value.retry_after == 60
    assert parser.memory == []


async def test_a_real_child_is_held_to_the_sized_limit() -> None:
    """A decompression bomb under a budget that leaves 160 MB stops at 160 MB, and a resume
    still reads under it."""
    import zlib

    bomb = one_page(
        zlib.compress(b"BT (" + b"A" * (200 * 1024 * 1024) + b") Tj ET", 9),
        b" /Filter /FlateDecode",
    )
    sized = MemoryBudget(750, budget(750 - MEMORY_HEADROOM_MB - 160))
    parser = PdfParser(PdfLimits(cpu_seconds=20, memory_mb=512), budget=sized)
    with pytest.raises(PdfTooExpensive, match="160 MB of memory"):
        await parser.text(bomb)
    assert (await parser.text(build_pdf(RESUME_LINES))).startswith("Alex Student")
