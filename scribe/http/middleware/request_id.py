"""Every request's ids: the server's own in the log, the client's ``X-Request-ID`` beside it and
on the response."""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scribe.http import request_ids


class RequestIdMiddleware:
    """Give every request its own server id in the log, with the client's ``X-Request-ID`` beside
    it; echo the client's id (or, without one, the server id) on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        client_id = incoming[:128] if incoming.isprintable() and incoming else None
        server_id = uuid.uuid4().hex
        request_id = client_id or server_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        token = request_ids.serving(server_id, client_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_ids.done(token)
