"""A database outage as the HTTP side sees it: one line when requests start being refused, one
when they stop."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from scribe.db.outage import OutageLog


class DatabaseOutageMiddleware:
    """Log a database outage once (WARNING) and its end once (INFO, with the refused count)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.outage = OutageLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self.outage.watching():
            await self.app(scope, receive, send)
