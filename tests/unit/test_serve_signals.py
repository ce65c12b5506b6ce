"""`scribe serve`: a second SIGTERM/SIGINT releases running queue jobs at once."""

from __future__ import annotations

import asyncio
import signal

import uvicorn
from starlette.applications import Starlette

from scribe.cli import _Server


async def test_second_signal_hands_release_now_to_the_loop() -> None:
    app = Starlette()
    released = asyncio.Event()
    app.state.release_queue_now = released.set
    server = _Server(uvicorn.Config(app))

    server.handle_exit(signal.SIGTERM, None)
    await asyncio.sleep(0)
    assert server.should_exit and not released.is_set()  # first signal: grace period

    server.handle_exit(signal.SIGTERM, None)
    await asyncio.wait_for(released.wait(), 1)  # second: release now


async def test_second_signal_without_a_consumer_only_forces_exit() -> None:
    server = _Server(uvicorn.Config(Starlette()))
    server.handle_exit(signal.SIGINT, None)
    server.handle_exit(signal.SIGINT, None)
    assert server.force_exit
