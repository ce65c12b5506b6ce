"""An unexpected exception answered inside the middleware stack, so its 500 carries the request
id and the CORS headers like any other answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


class UnhandledErrorMiddleware:
    """Render an unexpected exception with ``handler`` (the app's handler for ``Exception``)
    inside the middleware stack.

    Starlette's own handler for ``Exception`` sits outside every user middleware, so its 500 would
    carry neither ``X-Request-ID`` nor CORS headers and a browser would report a CORS failure
    instead of the error. Exceptions after the response has started are re-raised.
    """

    def __init__(self, app: ASGIApp, handler: ErrorHandler) -> None:
        self.app = app
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:
            if started:
                raise
            response = await self.handler(Request(scope), exc)
            await response(scope, receive, send)
