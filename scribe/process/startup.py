"""Start-up work begun ahead of use, in threads.

Some start-up steps are slow and spend their time outside Python's lock: starting the embedded
PostgreSQL (waiting on ``pg_ctl``), loading the CA bundle of the TLS context. ``scribe serve``
``begin``s them before it imports the app, so they run while the modules load on the main thread,
and the code that needs their result ``collect``s it where it would otherwise have run the step.
A step nobody began runs at collection, in a thread, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

# Steps begun and not yet collected, by (function, *arguments): one per process in practice.
_begun: dict[tuple[Hashable, ...], Future[Any]] = {}


def begin(step: Callable[..., T], *args: Hashable) -> None:
    """Run ``step(*args)`` in a thread of its own now (unless already begun)."""
    key = (step, *args)
    if key in _begun:
        return
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"startup-{step.__name__}")
    _begun[key] = executor.submit(step, *args)
    executor.shutdown(wait=False)  # the thread ends with the step


async def collect(step: Callable[..., T], *args: Hashable) -> T:
    """The result of ``step(*args)`` (or its exception): the run ``begin`` started, taken (a
    second call runs the step again), else a run now in a thread."""
    future = _begun.pop((step, *args), None)
    if future is None:
        return await asyncio.to_thread(step, *args)
    result: T = await asyncio.wrap_future(future)
    return result
