"""Serve an ASGI app on a free 127.0.0.1 port (uvicorn, in the current event loop).

The app under test is served as ``scribe serve`` serves it (its settings' HTTP server: the
guarded h11 protocol and its limits); the fakes of external services on plain uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.types import ASGIApp

from scribe.http.guard import uvicorn_config

if TYPE_CHECKING:
    from scribe.settings import Settings

TICK_SECONDS = 0.1  # uvicorn's: the Date header is renewed every tenth tick


class _QuietServer(uvicorn.Server):
    """uvicorn's server without signal handlers, and stopped without its fixed waits: a test
    serves an app or a fake for every few requests, and uvicorn's 0.1 s tick and 0.1 s pause
    for open connections would add about 0.2 s to each."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stop_requested = asyncio.Event()

    def stop(self) -> None:
        """Begin the shutdown now (uvicorn would notice ``should_exit`` at its next tick)."""
        self.should_exit = True
        self._stop_requested.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        """uvicorn's loop of ticks (the Date header, the exit checks), woken by ``stop()``."""
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), TICK_SECONDS)
            should_exit = await self.on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown; with no connection or request left, without its pause for them."""
        if self.server_state.connections or self.server_state.tasks:
            await super().shutdown(sockets)
            return
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()


@contextlib.asynccontextmanager
async def serve_asgi(
    app: ASGIApp, settings: Settings | None = None
) -> AsyncIterator[tuple[str, int]]:
    """Serve ``app`` (with ``settings``: on the server of ``scribe serve``); yield (base URL,
    port); stop on exit."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        options: dict[str, Any] = {
            "lifespan": "on",
            "log_level": "warning",
            "timeout_graceful_shutdown": 1,
        }
        config = (
            uvicorn.Config(app, **options)
            if settings is None
            else uvicorn_config(app, settings, **options)
        )
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name=f"asgi-server-{port}")
        try:
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("server stopped during startup")
                await asyncio.sleep(0.01)
            yield f"http://127.0.0.1:{port}", port
        finally:
            server.stop()
            await task


async def _main(latency: dict[str, float]) -> None:
    from tests.fakes.limits import FakeLimits
    from tests.fakes.services import FakeServices

    services = FakeServices()
    # Options that are not latencies (soaks: realistic feed sizes, no request log).
    services.arxiv_extra_papers = int(latency.pop("arxiv_extra_papers", 0))
    services.record_requests = not latency.pop("no_request_log", 0)
    services.realistic_research = bool(latency.pop("realistic_research", 0))
    # Rate limits: limit.<service>.<requests|input_tokens|output_tokens>=<per minute>, and
    # limit.<service>.burst_minutes=<minutes of each limit a bucket holds> (default 1).
    per_service: dict[str, dict[str, float]] = {}
    for name in [name for name in latency if name.startswith("limit.")]:
        _, service, kind = name.split(".", 2)
        per_service.setdefault(service, {})[kind] = latency.pop(name)
    for service, values in per_service.items():
        services.limits[service] = FakeLimits(
            requests=values.get("requests"),
            input_tokens=values.get("input_tokens"),
            output_tokens=values.get("output_tokens"),
            burst_minutes=values.get("burst_minutes", 1.0),
        )
    services.latency.update(latency)
    async with serve_asgi(services.app()) as (url, port):
        services.base_url, services.port = url, port
        print(url, flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":  # python -m tests.fakes.server service=seconds …  (the benchmarks)
    import sys

    pairs = (arg.split("=", 1) for arg in sys.argv[1:])
    asyncio.run(_main({name: float(value) for name, value in pairs}))
