"""Soak of the arXiv per-author cache: RSS growth over thousands of distinct authors.

The real ``ArxivPapers`` client (built from ``Settings`` as the service builds it, pacing set to
0 so the soak takes minutes instead of hours) asks the arXiv fake, running in a child process
(its memory is not ours), for ``--authors`` distinct authors, ``--concurrency`` at a time (the
service's pacing runs one at a time; with 8 at once, 8 feeds are parsed together in threads and
RSS rises once by ~20 MiB, flat after the first 1,000). Each feed has the size of a real one
(50 papers with long abstracts and co-authors). The process's RSS is read after a warm-up of
``--warmup`` other authors (fewer than the cache's bound, so filling the cache counts in the
growth) and again at the end, both after a full garbage collection; the growth is what the cache
and anything else that keeps per-author state costs. With ``--unbounded`` a second pass with an
effectively unbounded cache shows what the bound saves (it needs about 0.5 GB).

    .venv/bin/python bench/arxiv_cache_soak.py [--authors 5000] [--concurrency 1] [--unbounded]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil

from scribe.clients.papers import ArxivPapers
from scribe.domain.papers import select_papers
from scribe.settings import Settings

MIB = 2**20
TARGET_MIB = 10.0
FEED_PAPERS = 46  # + the fake's own 4 = 50, arXiv's page size in the client


@contextlib.asynccontextmanager
async def arxiv_fake() -> AsyncIterator[str]:
    """The fakes in a child process with real-sized feeds and no request log; yields the URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.server",
            f"arxiv_extra_papers={FEED_PAPERS}",
            "no_request_log=1",
        ],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = (await asyncio.to_thread(proc.stdout.readline)).strip()
        yield f"{url}/arxiv/api/query"
    finally:
        proc.terminate()
        proc.wait()


def rss_mib() -> float:
    """This process's resident set after a full collection."""
    gc.collect()
    return float(psutil.Process().memory_info().rss) / MIB


async def ask(papers: ArxivPapers, names: list[str], concurrency: int) -> int:
    """Look every name up, ``concurrency`` at a time; return how many found papers."""
    found = 0
    pending = iter(names)

    async def lane() -> None:
        nonlocal found
        for name in pending:
            chosen = select_papers(name, "quantum widgets", await papers.papers_by(name))
            found += bool(chosen)

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return found


async def soak(url: str, settings: Settings, label: str, args: argparse.Namespace) -> float:
    """One pass; print its figures and return the RSS growth in MiB."""
    async with httpx.AsyncClient(timeout=30) as http:
        papers = ArxivPapers(
            http,
            url,
            min_interval=settings.scribe_arxiv_min_interval_seconds,
            cache_seconds=settings.scribe_arxiv_cache_seconds,
            cache_entries=settings.scribe_arxiv_cache_entries,
        )
        tag = f"{label}-{time.monotonic_ns()}"
        await ask(papers, [f"Warm {tag} Author{n}" for n in range(args.warmup)], args.concurrency)
        before = rss_mib()
        started = time.perf_counter()
        found, marks = 0, []
        for start in range(0, args.authors, 1000):  # RSS every 1,000: a plateau or a slope?
            names = [f"Soak {tag} Author{n}" for n in range(start, min(start + 1000, args.authors))]
            found += await ask(papers, names, args.concurrency)
            marks.append(f"{rss_mib() - before:+.1f}")
        seconds = time.perf_counter() - started
        after = rss_mib()
        growth = after - before
        print(
            f"{label:<28} authors {args.authors}  found {found}  "
            f"cache entries {len(papers.cache)} (bound {settings.scribe_arxiv_cache_entries})  "
            f"RSS {before:.1f} -> {after:.1f} MiB  growth {growth:+.1f} MiB  "
            f"{args.authors / seconds:.0f} lookups/s",
            flush=True,
        )
        print(f"{'':<28} growth after each 1,000 authors (MiB): {' '.join(marks)}", flush=True)
    return growth


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=32)
    # 1 = what the service does: its pacing lets one arXiv request (and parse) run at a time.
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--unbounded", action="store_true", help="also a pass without the bound")
    args = parser.parse_args()
    async with arxiv_fake() as url:
        base = Settings(_env_file=None, arxiv_api_url=url, scribe_arxiv_min_interval_seconds=0)
        growth = await soak(url, base, "bounded (default settings)", args)
        if args.unbounded:
            unbounded = base.model_copy(update={"scribe_arxiv_cache_entries": 100_000})
            await soak(url, unbounded, "unbounded (for comparison)", args)
    verdict = "ok" if growth <= TARGET_MIB else "OVER TARGET"
    print(f"bounded growth {growth:+.1f} MiB, target <= {TARGET_MIB:.0f} MiB: {verdict}")


if __name__ == "__main__":
    asyncio.run(main())
