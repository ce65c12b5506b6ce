"""`scribe serve`: a second SIGTERM/SIGINT releases running queue jobs at once; the HTTP guard."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sse_starlette.sse import AppStatus
from starlette.applications import Starlette

from scribe.cli import _serve, _Server, build_parser
from scribe.http.guard import GuardedH11Protocol
from scribe.process import tracing
from scribe.settings import Settings


@pytest.fixture(autouse=True)
def _process_keeps_serving() -> Iterator[None]:
    """sse-starlette wraps uvicorn's handle_exit to set a process-wide "shutting down" flag,
    which would end every event stream of the tests that run after these in this process."""
    yield
    AppStatus.should_exit = False


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


def test_serve_runs_the_guarded_protocol_on_any_bind_address(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The HTTP limits hold on 0.0.0.0 (the Docker image) as on loopback, and uvicorn does not
    rewrite the client address from X-Forwarded-For."""
    configs: list[uvicorn.Config] = []
    monkeypatch.setattr(_Server, "run", lambda self, sockets=None: configs.append(self.config))
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    monkeypatch.setattr(tracing, "configure_tracing", lambda *args: False)  # process-global
    settings = Settings(_env_file=None, scribe_data_dir=tmp_path, scribe_http_max_header_bytes=8192)
    args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--port", "8123"])
    _serve(settings, args)
    (config,) = configs
    assert config.host == "0.0.0.0"
    assert isinstance(config.http, type) and issubclass(config.http, GuardedH11Protocol)
    assert config.http.limits.max_header_bytes == 8192
    assert config.proxy_headers is False
    assert config.timeout_keep_alive == settings.scribe_http_keepalive_seconds
