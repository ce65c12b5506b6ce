"""Background tasks that live for the duration of a block (the lifespan's LISTEN connection, the
provider-account sharing, the systemd watchdog): started named and tracked, logged once if they
die early, cancelled and awaited when the block ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def running(
    work: Coroutine[Any, Any, None], *, name: str, if_it_dies: str
) -> AsyncIterator[None]:
    """Run ``work`` in a task named ``name`` for the duration of the block; if it ends with an
    exception before the block does, log ``if_it_dies`` (what that means for the service)."""

    def surface(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("%s: %s", name, if_it_dies, exc_info=exc)

    task = asyncio.create_task(work, name=name)
    task.add_done_callback(surface)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
