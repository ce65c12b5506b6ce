"""Shared fixtures: a cloned database per test, settings, and the app served over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scribe.app import create_app
from scribe.db.embedded import with_database
from scribe.db.pool import Pool, create_pool
from scribe.http.auth import mint_token
from scribe.settings import Settings
from tests import database
from tests.fakes.server import serve_asgi

TEST_JWT_SECRET = "test-secret-for-hs256-tokens-0123456789abcdef"
# ``make test`` runs ``pytest -n auto``: one worker per CPU the run may use, at most this many
# (each worker holds an embedded server and may start Chromium or worker processes).
MAX_TEST_WORKERS = 4
LONG_TEST_MARKERS = ("slow", "fuzz")
SESSION_STARTED = pytest.StashKey[float]()


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """The worker count of ``-n auto`` (PYTEST_XDIST_AUTO_NUM_WORKERS overrides it)."""
    if configured := os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(configured)
    return max(1, min(MAX_TEST_WORKERS, len(os.sched_getaffinity(0))))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests first (otherwise in collection order), so that parallel workers do not end
    with one of them running alone."""
    items.sort(key=lambda item: not any(item.get_closest_marker(m) for m in LONG_TEST_MARKERS))


@pytest.fixture(scope="session", autouse=True)
def _clean_environment() -> Iterator[None]:
    """Keep the machine's environment (API keys, DATABASE_URL…) out of the tests' settings."""
    saved = {}
    for name in Settings.model_fields:
        value = os.environ.pop(name.upper(), None)
        if value is not None:
            saved[name.upper()] = value
    yield
    os.environ.update(saved)


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    """DSN used to create and drop per-test databases; an embedded server is stopped at the end."""
    server = database.embedded_server()
    dsn = database.admin_dsn(server)
    if server is not None:
        asyncio.run(database.tune_embedded(dsn))
    try:
        yield dsn
    finally:
        if server is not None:
            database.release_server(server)


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[SESSION_STARTED] = time.time()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run if an embedded test server it started outlived it, and stop that server
    (checked by the process that ran the tests, or that distributed them, once every worker
    has stopped its own: one left means a worker crashed or a session's stop failed)."""
    if hasattr(session.config, "workerinput"):
        return
    left = database.left_running(since=session.config.stash[SESSION_STARTED])
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write("\n")
            reporter.write_line("embedded test servers still running after the run:", red=True)
            for line in left.values():
                reporter.write_line(f"  {line}", red=True)
        for directory in left:
            database.stop_server(directory)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def template_db(pg_admin_dsn: str) -> Iterator[str]:
    """A migrated template database, created once per session."""
    name = database.template_database(pg_admin_dsn)
    yield name
    database.drop(pg_admin_dsn, name)


@pytest.fixture
async def database_url(pg_admin_dsn: str, template_db: str) -> AsyncIterator[str]:
    """A fresh migrated database for this test, dropped afterwards."""
    name = f"scribe_t_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    await database.clone_database(pg_admin_dsn, name, template_db)
    try:
        yield with_database(pg_admin_dsn, name)
    finally:
        await database.drop_database(pg_admin_dsn, name)


@pytest.fixture
def make_settings(database_url: str, tmp_path: Path) -> Callable[..., Settings]:
    """Build Settings for this test's database, with overrides; no .env file is read."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "scribe_data_dir": tmp_path / "data",
            "supabase_jwt_secret": TEST_JWT_SECRET,
            # The test runner's own memory is not a service's: PDF parses are not sized from it
            # (tests/integration/test_pdf_slots.py covers the budget).
            "scribe_memory_budget_mb": 0,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Default test settings."""
    return make_settings()


@contextlib.asynccontextmanager
async def serve(settings: Settings, **app_options: Any) -> AsyncIterator[str]:
    """Serve ``create_app(settings, **app_options)`` over real HTTP on loopback, on the server
    ``scribe serve`` runs; yield its URL."""
    async with serve_asgi(create_app(settings, **app_options), settings) as (url, _port):
        yield url


@pytest.fixture
async def base_url(settings: Settings) -> AsyncIterator[str]:
    """The app for ``settings``, served over real HTTP on loopback."""
    async with serve(settings) as url:
        yield url


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the served app."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        yield http


def token_for(email: str, user_id: uuid.UUID | None = None, **kwargs: Any) -> str:
    """A valid HS256 test token for this user."""
    return mint_token(TEST_JWT_SECRET, email=email, user_id=user_id, issuer=None, **kwargs)


def auth_headers(email: str, user_id: uuid.UUID | None = None) -> dict[str, str]:
    """Authorization header for a test user."""
    return {"Authorization": f"Bearer {token_for(email, user_id)}"}


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    """A small pool on this test's database (for arranging and asserting rows)."""
    opened = await create_pool(database_url, size=4, transaction_pooler=False)
    try:
        yield opened
    finally:
        await opened.close()
