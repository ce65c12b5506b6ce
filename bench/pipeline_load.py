"""Pipeline throughput and memory against fakes with the previous generation's step latencies.

Fakes run in a child process (so they don't count towards this process's RSS) and add:
template_parser 1.2 s, web_scraper 5.3 s (both Exa queries, concurrent), arxiv_helper 0.8 s,
email_composer 3.1 s. arXiv pacing (one request per 3 s) stays on. ``run_items`` is the one
function to swap for the real queue consumer once it is merged.

    .venv/bin/python bench/pipeline_load.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scribe.clients import Clients, open_clients
from scribe.settings import Settings
from scribe.steps import Pipeline
from scribe.steps.data import PipelineData
from scribe.steps.pipeline import build_pipeline, run_pipeline
from tests.fakes.fixtures import GENERAL_TEMPLATE, RESEARCH_TEMPLATE, fake_policy

LATENCY = {"template_parser": 1.2, "exa": 5.3, "arxiv": 0.8, "email_composer": 3.1}
DEFAULT_CONCURRENCY = Settings(_env_file=None).scribe_concurrency

Runner = Callable[[Pipeline, list[PipelineData], int], Awaitable[list[PipelineData]]]


async def run_items(
    pipeline: Pipeline, items: list[PipelineData], concurrency: int
) -> list[PipelineData]:
    """Run items through the pipeline, ``concurrency`` at a time (stand-in for the consumer)."""
    slots = asyncio.Semaphore(concurrency)

    async def one(data: PipelineData) -> PipelineData:
        async with slots:
            return await run_pipeline(pipeline, data)

    return list(await asyncio.gather(*(one(item) for item in items)))


class PeakRss:
    """Sample RSS (this process, optionally + children) every 50 ms in a thread."""

    def __init__(self, children: bool) -> None:
        self.children = children
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            if self.children:
                # PSS: Chromium's processes share most pages; summing RSS would count them
                # once per process.
                total = me.memory_full_info().pss
                for child in me.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        total += child.memory_full_info().pss
            else:
                total = me.memory_info().rss
            self.peak = max(self.peak, total)
            time.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.asynccontextmanager
async def fake_services() -> AsyncIterator[tuple[str, int]]:
    args = [f"{name}={seconds}" for name, seconds in LATENCY.items()]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.server", *args],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = (await asyncio.to_thread(proc.stdout.readline)).strip()
        yield url, int(url.rsplit(":", 1)[1])
    finally:
        proc.terminate()
        proc.wait()


def items(template: str, count: int, distinct: bool) -> list[PipelineData]:
    return [
        PipelineData(
            queue_item_id=uuid.uuid4(),
            user_id=uuid.uuid4(),
            recipient_name=f"Jane Roe{i}" if distinct else "Jane Roe",
            recipient_interest="quantum widgets",
            email_template=template,
        )
        for i in range(count)
    ]


@contextlib.asynccontextmanager
async def clients_for(url: str, port: int, browser: bool) -> AsyncIterator[Clients]:
    settings = Settings(
        _env_file=None,
        anthropic_api_key="sk-bench",
        anthropic_base_url=f"{url}/anthropic",
        exa_api_key="exa-bench",
        exa_base_url=f"{url}/exa",
        arxiv_api_url=f"{url}/arxiv/api/query",
        scribe_chromium_path=None if browser else "/nonexistent/chromium",
    )
    async with (
        httpx.AsyncClient(timeout=30) as http,
        open_clients(settings, http, address_policy=fake_policy(port)) as clients,
    ):
        yield clients


async def measure(
    label: str,
    clients: Clients,
    batch: list[PipelineData],
    concurrency: int,
    children: bool,
    runner: Runner = run_items,
) -> None:
    finished: list[float] = []
    pipeline = build_pipeline(clients)
    last = pipeline[-1]

    async def timed_last(data: PipelineData) -> PipelineData:
        result = await last.run(data)
        finished.append(time.monotonic())
        return result

    pipeline = (*pipeline[:-1], type(last)(last.name, timed_last))
    with PeakRss(children) as rss:
        started = time.monotonic()
        done = await runner(pipeline, batch, concurrency)
        elapsed = time.monotonic() - started
    assert all(d.email_message for d in done)
    per_minute = len(done) / elapsed * 60
    # Steady state: completions per minute between the first and the last completion (leaves
    # out the pipeline's fill-up time, which dominates short batches).
    span = finished[-1] - finished[0] if len(finished) > 1 else 0.0
    steady = f"{(len(finished) - 1) / span * 60:6.1f}" if span > 0 else "   n/a"
    memory = "PSS process + children" if children else "RSS process"
    print(
        f"{label:<31} c={concurrency:<2} n={len(done):<3} {elapsed:6.1f} s "
        f"{per_minute:6.1f}/min batch {steady}/min steady  peak {memory} "
        f"{rss.peak / 2**20:6.1f} MB",
        flush=True,
    )


async def main(quick: bool) -> None:
    scale = 1 if quick else 3
    print(
        f"step latencies {LATENCY}; arXiv pacing 1 request / 3 s; default c={DEFAULT_CONCURRENCY}"
    )
    async with fake_services() as (url, port):
        for concurrency in (1, 4, DEFAULT_CONCURRENCY):
            async with clients_for(url, port, browser=False) as clients:
                n = max(2, concurrency * scale)
                await measure(
                    "general", clients, items(GENERAL_TEMPLATE, n, True), concurrency, False
                )
        for concurrency in (1, 4, DEFAULT_CONCURRENCY):
            async with clients_for(url, port, browser=False) as clients:
                n = max(2, concurrency * scale)
                await measure(
                    "research, distinct authors",
                    clients,
                    items(RESEARCH_TEMPLATE, n, True),
                    concurrency,
                    False,
                )
        async with clients_for(url, port, browser=False) as clients:
            n = DEFAULT_CONCURRENCY * scale
            await measure(
                "research, one repeated author",
                clients,
                items(RESEARCH_TEMPLATE, n, False),
                DEFAULT_CONCURRENCY,
                False,
            )
        async with clients_for(url, port, browser=True) as clients:
            n = DEFAULT_CONCURRENCY * scale
            await measure(
                "general, browser path forced",
                clients,
                items(GENERAL_TEMPLATE, n, True),
                DEFAULT_CONCURRENCY,
                True,
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer items per configuration")
    asyncio.run(main(parser.parse_args().quick))
