"""A provider SDK's client, built by its first call rather than at start.

A provider SDK costs tens of MiB and tenths of a second to import (``anthropic``, ``openai``,
``exa_py``): a service configured with keys would pay them at every start if the SDKs were loaded
when the clients are opened. ``LazySdk`` loads one when a call first needs it, its import in a
worker thread (the event loop keeps serving while the modules load), once however many calls ask
at the same time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

C = TypeVar("C")


class LazySdk(Generic[C]):
    """``build()`` (which imports the SDK and returns its client), run by the first ``get()``."""

    def __init__(self, build: Callable[[], C]) -> None:
        self._build = build
        self._client: C | None = None
        self._building = asyncio.Lock()

    async def get(self) -> C:
        """The client, built (in a worker thread) by the first call: concurrent first calls
        wait for that one build."""
        if self._client is None:
            async with self._building:
                if self._client is None:
                    self._client = await asyncio.to_thread(self._build)
        return self._client

    @property
    def built(self) -> C | None:
        """The client if a call built it (None: the SDK was never needed)."""
        return self._client
