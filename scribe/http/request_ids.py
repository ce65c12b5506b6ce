"""The ids of the HTTP request being served, for the log: the server's own (new for every
request) and the client's ``X-Request-ID`` beside it (the frontend sends one id for many
requests, so it cannot tell requests apart on its own). Standard library only, so the CLI can
install the log filter without loading the app."""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token

_current: ContextVar[str] = ContextVar("scribe_request_ids", default="")


def serving(server_id: str, client_id: str | None) -> Token[str]:
    """Mark the rest of this context as serving one request; returns the token for ``done``."""
    text = f" [request {server_id}" + (f" client {client_id}]" if client_id else "]")
    return _current.set(text)


def done(token: Token[str]) -> None:
    """The request is served: log lines no longer carry its ids."""
    _current.reset(token)


class RequestIdFilter(logging.Filter):
    """Gives every record a ``request`` attribute: `` [request <server id> client <id>]`` while
    a request is served, empty otherwise (the log format places it after the logger name)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the attribute; never drops a record."""
        record.request = _current.get()
        return True


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request)s: %(message)s"
