"""/api/queue/stream is bounded: a few streams per user (a newer one ends the oldest), a maximum
lifetime, and no ``queue_watchers`` row left behind by a stream that closed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable

import httpx

from scribe.db.pool import Pool
from scribe.settings import Settings
from tests.conftest import auth_headers, serve

EMAIL = "ada@uni.edu"


async def _user(api: httpx.AsyncClient) -> dict[str, str]:
    headers = auth_headers(EMAIL)
    assert (await api.post("/api/user/init", json={}, headers=headers)).status_code == 201
    return headers


async def _next_event(lines: AsyncIterator[str]) -> tuple[str, str]:
    """The next event's name and data (pings included, as ``ping``)."""
    name = ""
    async for line in lines:
        if line.startswith(": ping"):
            return "ping", ""
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            return name, line.split(":", 1)[1].strip()
    return "end", ""


@contextlib.asynccontextmanager
async def _stream(
    api: httpx.AsyncClient, headers: dict[str, str]
) -> AsyncIterator[AsyncIterator[str]]:
    """An open stream, once it is running (its first heartbeat came)."""
    async with api.stream("GET", "/api/queue/stream", headers=headers) as response:
        assert response.status_code == 200
        lines = response.aiter_lines()
        assert (await asyncio.wait_for(_next_event(lines), 5))[0] == "ping"
        yield lines


async def test_a_stream_past_the_per_user_limit_ends_the_oldest(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        scribe_worker=False, scribe_sse_heartbeat_seconds=0.2, scribe_sse_max_streams_per_user=2
    )
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as api:
        headers = await _user(api)
        # Entered in order: the third opens once the first two are running.
        async with (
            _stream(api, headers) as oldest,
            _stream(api, headers) as second,
            _stream(api, headers),
        ):
            seen = [await asyncio.wait_for(_next_event(oldest), 5) for _ in range(2)]
            still = await asyncio.wait_for(_next_event(second), 5)
    names = [name for name, _ in seen]
    assert "replaced" in names, seen
    assert names[-1] == "end" or names.index("replaced") == len(names) - 1
    assert "too many open streams" in dict(seen)["replaced"]
    assert still[0] == "ping"  # the newer streams go on


async def test_a_stream_ends_after_its_lifetime_asking_to_reconnect(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        scribe_worker=False, scribe_sse_heartbeat_seconds=0.2, scribe_sse_max_lifetime_seconds=0.5
    )
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as api:
        headers = await _user(api)
        async with api.stream("GET", "/api/queue/stream", headers=headers) as response:
            lines = response.aiter_lines()
            events: list[tuple[str, str]] = []
            while not events or events[-1][0] != "end":
                events.append(await asyncio.wait_for(_next_event(lines), 5))
    shutdown = [json.loads(data) for name, data in events if name == "shutdown"]
    assert shutdown and "maximum lifetime" in shutdown[0]["detail"]


async def test_closed_streams_leave_no_watcher_rows(
    make_settings: Callable[..., Settings], pool: Pool
) -> None:
    settings = make_settings(scribe_worker=False, scribe_sse_heartbeat_seconds=0.2)
    count = "SELECT count(*) FROM queue_watchers"
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as api:
        headers = await _user(api)
        async with _stream(api, headers), _stream(api, headers), _stream(api, headers):
            assert await pool.fetchval(count) == 3
        # The clients hung up; each stream's row goes as it notices.
        async with asyncio.timeout(10):
            while await pool.fetchval(count):
                await asyncio.sleep(0.05)


async def test_a_client_behind_the_proxy_at_its_share_leaves_the_others_served(
    make_settings: Callable[..., Settings],
) -> None:
    """Behind cloudflared (a trusted proxy on loopback) every client shares its connections:
    they are told apart by CF-Connecting-IP, each with the per-peer number of open requests."""
    settings = make_settings(
        scribe_worker=False,
        scribe_sse_heartbeat_seconds=0.2,
        scribe_http_max_connections_per_peer=2,
    )
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as api:
        headers = await _user(api)
        busy = {**headers, "CF-Connecting-IP": "203.0.113.9"}
        other = {**headers, "CF-Connecting-IP": "203.0.113.10"}
        async with _stream(api, busy), _stream(api, busy):
            refused = await api.get("/api/user/profile", headers=busy)
            served = await api.get("/api/user/profile", headers=other)
        # Its streams closed: its share is free again once the server notices.
        async with asyncio.timeout(10):
            while (await api.get("/api/user/profile", headers=busy)).status_code != 200:
                await asyncio.sleep(0.05)
    assert refused.status_code == 503
    assert "Too many open requests from your address" in refused.json()["detail"]
    assert served.status_code == 200
