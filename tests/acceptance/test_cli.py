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
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from scribe.db import queue_items, users
from scribe.db.pool import Pool
from scribe.db.queue_items import NewItem
from scribe.settings import Settings
from tests.conftest import serve


async def _scribe(*args: str, data_dir: Path, **env: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scribe.cli",
        *args,
        cwd=data_dir.parent,
        env={"PATH": os.environ.get("PATH", ""), "SCRIBE_DATA_DIR": str(data_dir), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode().strip(), stderr.decode()


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


@pytest.mark.slow
async def test_sigterm_stops_the_embedded_postgres(tmp_path: Path) -> None:
    """`systemctl stop` sends SIGTERM: the server must drain and stop its own PostgreSQL."""
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
    try:
        async with asyncio.timeout(50), httpx.AsyncClient() as client:
            while True:
                if server.returncode is not None:
                    _, early = await server.communicate()
                    pytest.fail(f"scribe serve exited during startup: {early.decode()}")
                with contextlib.suppress(httpx.TransportError):
                    health = await client.get(f"http://127.0.0.1:{port}/health")
                    if health.status_code == 200:
                        break
                await asyncio.sleep(0.05)
        pid_file = data_dir / "postgres" / "postmaster.pid"
        postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
        server.send_signal(signal.SIGTERM)
        _, stderr = await server.communicate()
        assert server.returncode == 128 + signal.SIGTERM, stderr.decode()
        assert "Application shutdown complete" in stderr.decode()
        assert not pid_file.exists()
        # pg_ctl returns once the pid file is gone; the postmaster exits a moment later.
        await asyncio.to_thread(postmaster.wait, 10)
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
