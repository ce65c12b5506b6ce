"""Logfire tracing: configured by the processes we run (serve, worker), only with a token.

logfire, with opentelemetry and protobuf, is about 14 MiB and many modules to import, so it is
imported only when ``LOGFIRE_TOKEN`` is set. Code opens spans with ``span(...)``:
logfire's span once tracing is configured, else a no-op that costs nothing.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from scribe import __version__
from scribe.settings import Settings

if TYPE_CHECKING:
    from starlette.applications import Starlette

_configured = False  # set once by configure_tracing; logfire's own configuration is global too


class Span(Protocol):
    """What callers do with a span."""

    def set_attribute(self, key: str, value: Any) -> None:
        """Record an attribute on the span."""


class _NoSpan:
    """The span when tracing is off."""

    def set_attribute(self, key: str, value: Any) -> None:
        """Dropped: nothing is traced."""

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_NO_SPAN = _NoSpan()


def span(msg_template: str, **attributes: Any) -> AbstractContextManager[Span]:
    """A logfire span when tracing is configured, else a no-op (logfire is never imported)."""
    if not _configured:
        return _NO_SPAN
    import logfire

    return logfire.span(msg_template, **attributes)


def configure_tracing(settings: Settings, app: Starlette | None = None) -> bool:
    """With ``LOGFIRE_TOKEN``: import and configure logfire for this process and instrument
    HTTP, asyncpg and httpx. Returns whether spans are sent anywhere. Startup never requires a
    token, and without one logfire is not even imported."""
    global _configured
    if settings.logfire_token is None:
        return False
    import logfire

    logfire.configure(
        token=settings.logfire_token.get_secret_value(),
        send_to_logfire="if-token-present",
        service_name="scribe",
        service_version=__version__,
        console=False,
    )
    if app is not None:
        logfire.instrument_starlette(app)
    logfire.instrument_asyncpg()
    logfire.instrument_httpx()
    _configured = True
    return True
