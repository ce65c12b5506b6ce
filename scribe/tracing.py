"""Logfire tracing: configured by the processes we run (serve, worker); sends only with a token.

Code opens spans with ``logfire.span(...)`` directly; without ``LOGFIRE_TOKEN`` they go nowhere.
"""

from __future__ import annotations

import logfire
from starlette.applications import Starlette

from scribe import __version__
from scribe.settings import Settings


def configure_tracing(settings: Settings, app: Starlette | None = None) -> bool:
    """Configure logfire for this process; instrument HTTP, asyncpg and httpx when a token is
    set. Returns whether spans are sent anywhere. Startup never requires a token."""
    token = settings.logfire_token.get_secret_value() if settings.logfire_token else None
    logfire.configure(
        token=token,
        send_to_logfire="if-token-present",
        service_name="scribe",
        service_version=__version__,
        console=False,
    )
    if token is None:
        return False
    if app is not None:
        logfire.instrument_starlette(app)
    logfire.instrument_asyncpg()
    logfire.instrument_httpx()
    return True
