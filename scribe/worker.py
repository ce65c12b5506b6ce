"""Wiring the queue consumer into a process (part of the composition root, with scribe/deps.py):
the job handlers it runs, the supervised consumer of ``scribe serve``, and ``scribe worker`` with
its signal handling. A new job kind is registered in ``job_handlers``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable

from scribe.deps import Deps, freeze_startup_heap, open_deps
from scribe.emails.handler import email_handlers
from scribe.queue.consumer import Consumer
from scribe.queue.handler import Handlers
from scribe.settings import Settings
from scribe.steps import Pipeline
from scribe.steps.pipeline import build_pipeline

log = logging.getLogger(__name__)

PipelineFactory = Callable[[Deps], Pipeline]
"""Builds the process's pipeline from its Deps (the real one: scribe.steps.pipeline)."""

RESTART_DELAY_SECONDS = 5.0


def production_pipeline(deps: Deps) -> Pipeline:
    """The four real steps over this process's external-service clients."""
    return build_pipeline(deps.clients)


def job_handlers(deps: Deps, pipeline: Pipeline) -> Handlers:
    """The handler of every job kind this process runs (today: email jobs over ``pipeline``)."""
    return email_handlers(pipeline, deps.settings)


def open_consumer(deps: Deps, pipeline: Pipeline) -> Consumer:
    """A consumer over this process's pool and LISTEN connection, running every job kind."""
    return Consumer(
        deps.pool,
        deps.settings,
        job_handlers(deps, pipeline),
        listener=deps.listener,
        providers=deps.clients.accounts,
    )


@contextlib.asynccontextmanager
async def supervised_consumer(
    deps: Deps, pipeline_factory: PipelineFactory | None
) -> AsyncIterator[Callable[[], None]]:
    """Run a consumer for the duration of the block (the app lifespan); if it crashes it is
    logged and a fresh one (new owner id) starts after a delay. Yields ``release_now``, which
    makes the shutdown release running jobs at once instead of waiting out the grace period."""
    pipeline = (pipeline_factory or production_pipeline)(deps)
    current: list[Consumer] = []
    stopping = asyncio.Event()

    async def supervise() -> None:
        while not stopping.is_set():
            consumer = open_consumer(deps, pipeline)
            current[:] = [consumer]
            try:
                await consumer.run()
            except Exception:
                log.exception("queue consumer crashed; restarting in %.0fs", RESTART_DELAY_SECONDS)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), RESTART_DELAY_SECONDS)

    def release_now() -> None:
        stopping.set()
        for consumer in current:
            consumer.release_now()

    task = asyncio.create_task(supervise(), name="queue-consumer")
    try:
        yield release_now
    finally:
        stopping.set()
        for consumer in current:
            consumer.stop()
        await task


def install_signal_handlers(consumer: Consumer) -> Callable[[], None]:
    """First SIGTERM/SIGINT: stop claiming and finish within the grace period; second: release
    running items at once. Returns a function removing the handlers."""
    loop = asyncio.get_running_loop()
    received = 0

    def handle(signum: signal.Signals) -> None:
        nonlocal received
        received += 1
        if received == 1:
            log.info("%s: stopping after running jobs (grace period)", signum.name)
            consumer.stop()
        else:
            log.warning("%s again: releasing running jobs now", signum.name)
            consumer.release_now()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, handle, signum)

    def remove() -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)

    return remove


async def run_worker(
    settings: Settings, pipeline_factory: PipelineFactory | None = None, *, drain: bool = False
) -> Consumer:
    """``scribe worker``: only the consumer, until a signal (or, with ``drain``, until idle)."""
    async with open_deps(settings) as deps:
        consumer = open_consumer(deps, (pipeline_factory or production_pipeline)(deps))
        remove_handlers = install_signal_handlers(consumer)
        freeze_startup_heap()
        try:
            log.info("worker %s started with %d slots", consumer.owner, settings.scribe_concurrency)
            await consumer.run(drain=drain)
        finally:
            remove_handlers()
        log.info("worker %s stopped: %s", consumer.owner, dict(consumer.outcomes))
        return consumer
