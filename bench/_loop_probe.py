"""``scribe serve`` with an event-loop pause probe and GC timing (run by bench/lean_start.py).

    python bench/_loop_probe.py serve --host 127.0.0.1 --port N   (PROBE_OUT=file.json)

The real ``scribe.cli.main`` runs; only the app's lifespan is wrapped. Once startup is done (the
service's own ``gc.freeze()`` included), a task sleeps 10 ms at a time and records how late it
wakes (a loop pause: a callback or a collection holding the loop), and ``gc.callbacks`` time every
collection. At exit the samples go to ``$PROBE_OUT`` as JSON, stamped with ``time.monotonic()``
(system-wide on Linux) so the bench can split them into its phases. ``PROBE_UNFREEZE=1`` skips
the service's ``freeze_startup_heap()`` (only its freeze: the collector, off during start-up, is
turned on as usual), to measure what it is worth.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from scribe import cli

cli.lean_imports()  # as the console script does, before the app's modules load

import scribe.app  # noqa: E402
import scribe.deps  # noqa: E402

PERIOD = 0.010
HEAVY = (
    "anthropic",
    "openai",
    "exa_py",
    "pypdf",
    "playwright",
    "trafilatura",
    "arxiv",
    "logfire",
    "opentelemetry",
    "google.protobuf",
)

lags: list[tuple[float, float]] = []  # (when, seconds late) above 1 ms
collections: list[tuple[float, int, float]] = []  # (when, generation, seconds)
_started = [0.0]


def _on_gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        collections.append(
            (time.monotonic(), info["generation"], time.perf_counter() - _started[0])
        )


async def _probe() -> None:
    while True:
        before = time.monotonic()
        await asyncio.sleep(PERIOD)
        late = time.monotonic() - before - PERIOD
        if late > 0.001:
            lags.append((time.monotonic(), late))


def _wrap(create_app: Callable[..., Any]) -> Callable[..., Any]:
    def create(*args: Any, **kwargs: Any) -> Any:
        app = create_app(*args, **kwargs)
        inner = app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def lifespan(app_: Any) -> AsyncIterator[Any]:
            async with inner(app_) as state:
                ready = {
                    "ready": time.monotonic(),
                    "modules": len(sys.modules),
                    "heavy_loaded": [name for name in HEAVY if name in sys.modules],
                }
                gc.callbacks.append(_on_gc)
                task = asyncio.create_task(_probe(), name="loop-probe")
                try:
                    yield state
                finally:
                    task.cancel()
                    gc.callbacks.remove(_on_gc)
                    out = {
                        **ready,
                        "frozen": gc.get_freeze_count(),
                        "lags": lags,
                        "collections": collections,
                    }
                    with open(os.environ["PROBE_OUT"], "w", encoding="utf-8") as file:
                        json.dump(out, file)

        app.router.lifespan_context = lifespan
        return app

    return create


def _collector_on_without_freeze() -> None:
    gc.enable()


if __name__ == "__main__":
    scribe.app.create_app = _wrap(scribe.app.create_app)  # type: ignore[assignment]
    if os.environ.get("PROBE_UNFREEZE") and hasattr(scribe.deps, "freeze_startup_heap"):
        scribe.deps.freeze_startup_heap = _collector_on_without_freeze
    sys.exit(cli.main(sys.argv[1:]))
