"""The resources one process shares, built by ``open_deps`` (lifespan or worker), passed down."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from starlette.requests import Request

from scribe import db
from scribe.clients import Clients, open_clients, pacing_caps
from scribe.clients.netguard import AddressPolicy
from scribe.db import migrations
from scribe.db.pool import Pool, connect, create_pool
from scribe.db.providers import ProviderTables
from scribe.db.template_analyses import TemplateAnalysisStore
from scribe.http.auth import DEV_ISSUER, JwksCache, TokenVerifier, dev_secret
from scribe.process import startup
from scribe.process.tls import tls_context
from scribe.providers.account import Breaker
from scribe.providers.accounts import Accounts
from scribe.providers.sharing import AccountSharing, sharing_accounts
from scribe.queue.listener import Listener, running_listener
from scribe.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Deps:
    """Everything a handler or a job needs; opened and closed by ``open_deps``, never global."""

    settings: Settings
    pool: Pool
    verifier: TokenVerifier
    clients: Clients
    listener: Listener | None = None  # None in poll-only mode (SCRIBE_LISTEN=false, poolers)


def get_deps(request: Request) -> Deps:
    """The Deps of the running app (put into the request state by the lifespan)."""
    deps: Deps = request.state.deps
    return deps


def build_verifier(settings: Settings, http: httpx.AsyncClient) -> TokenVerifier:
    """HS256 and/or JWKS per settings; with neither configured, the local dev secret."""
    secret = (
        settings.supabase_jwt_secret.get_secret_value() if settings.supabase_jwt_secret else None
    )
    issuer = settings.jwt_issuer
    jwks = None
    if settings.supabase_url:
        jwks = JwksCache(f"{settings.supabase_url}/auth/v1/.well-known/jwks.json", http)
    elif secret is None:
        log.warning("no SUPABASE_URL or SUPABASE_JWT_SECRET: using the local development secret")
        secret, issuer = dev_secret(settings.data_dir), DEV_ISSUER
    return TokenVerifier(hs256_secret=secret, issuer=issuer, jwks=jwks)


def freeze_startup_heap() -> None:
    """Once start-up is done (``scribe serve``, ``scribe worker``; never in tests): move every
    object (modules, classes, settings, clients, which live as long as the process) to the
    permanent generation, so that a full collection no longer walks them and holds the event loop
    that long (bench/lean_start.py measures it), and turn the collector on (the CLI keeps it off
    during start-up).

    No collection first: it took ~60 ms of start time to find ~2.4k objects (~0.4 MB) of start-up
    garbage, which are kept instead. (Nor a count of what was frozen: a ~10 ms walk.)"""
    gc.freeze()
    gc.enable()


def provider_accounts(settings: Settings, tables: ProviderTables | None = None) -> Accounts:
    """The process's provider account records, per settings, sharing their state through
    ``tables`` (the database's provider tables)."""
    breaker = Breaker(
        threshold=settings.scribe_breaker_threshold,
        probe_seconds=settings.scribe_breaker_probe_seconds,
        probe_max_seconds=settings.scribe_breaker_probe_max_seconds,
    )
    owner = f"{socket.gethostname()}:{os.getpid()}"
    return Accounts(pacing_caps(settings), breaker=breaker, store=tables, owner=owner)


async def apply_migrations(dsn: str, settings: Settings) -> list[str]:
    """Apply pending migrations on a dedicated connection."""
    conn = await connect(dsn, transaction_pooler=settings.transaction_pooler)
    try:
        return await migrations.migrate(conn)
    finally:
        await conn.close()


async def _migrated_database(settings: Settings) -> str:
    """The database's DSN (the embedded server started if it is the one), migrations applied."""
    dsn = await db.resolve_dsn(settings)
    await apply_migrations(dsn, settings)
    return dsn


@asynccontextmanager
async def open_deps(
    settings: Settings, *, address_policy: AddressPolicy | None = None
) -> AsyncIterator[Deps]:
    """Open database (embedded if needed), migrations, pool, HTTP client, the external-service
    clients and the LISTEN connection (unless poll-only); close in reverse.
    ``address_policy`` is a test-only SSRF widening (see ``open_clients``)."""
    # One TLS context for both HTTP clients, loaded (or, when begun ahead, collected) while the
    # database is started or reached and migrated.
    dsn, tls = await asyncio.gather(_migrated_database(settings), startup.collect(tls_context))
    pool = await create_pool(
        dsn, size=settings.scribe_db_pool_size, transaction_pooler=settings.transaction_pooler
    )
    tables = ProviderTables(pool)
    accounts = provider_accounts(settings, tables)
    try:
        async with (
            httpx.AsyncClient(
                timeout=httpx.Timeout(10.0), follow_redirects=False, verify=tls
            ) as http,
            open_clients(
                settings,
                http,
                tls=tls,
                address_policy=address_policy,
                analysis_store=TemplateAnalysisStore(pool),
                accounts=accounts,
            ) as clients,
            contextlib.AsyncExitStack() as stack,
        ):
            sharing = AccountSharing(
                tables,
                accounts,
                interval=settings.scribe_pacing_share_interval_seconds,
                window=settings.scribe_pacing_share_window_seconds,
            )
            await stack.enter_async_context(sharing_accounts(sharing))
            listener = None
            if settings.listen_enabled:
                listener = await stack.enter_async_context(running_listener(Listener(dsn)))
            verifier = build_verifier(settings, http)
            stack.push_async_callback(verifier.aclose)  # a JWKS fetch in flight
            yield Deps(
                settings=settings,
                pool=pool,
                verifier=verifier,
                clients=clients,
                listener=listener,
            )
    finally:
        await pool.close()
