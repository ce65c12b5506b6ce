"""``create_app(settings)``: the Starlette app assembled from data (routes, middleware, handlers,
lifespan). The only module that knows HTTP status codes for the project's errors."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scribe import errors
from scribe.api import emails, health, templates, users
from scribe.api.common import RequestValidationFailed
from scribe.clients.netguard import AddressPolicy
from scribe.deps import open_deps
from scribe.settings import Settings

log = logging.getLogger(__name__)

# Most specific first: the first matching class decides the status.
STATUS_BY_ERROR: list[tuple[type[errors.ScribeError], int]] = [
    (errors.ProfileNotInitialized, 403),
    (errors.InvalidRequest, 400),
    (errors.AuthenticationError, 401),
    (errors.PermissionDenied, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.PayloadTooLarge, 413),
    (errors.QuotaExceeded, 429),
    (errors.AuthUnavailable, 503),
    (errors.DatabaseUnavailable, 503),
    (errors.TransientStepError, 503),  # an upstream model/search failed; try again later
    (errors.PermanentStepError, 502),
]


def status_for(exc: errors.ScribeError) -> int:
    """The HTTP status of a project error (500 for anything unmapped)."""
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            return status
    return 500


async def _scribe_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.ScribeError)
    status = status_for(exc)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    if status >= 500:
        log.error("request failed: %s", exc, exc_info=exc)
        detail = exc.message if status in (502, 503) else "Internal server error"
    else:
        detail = exc.message
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationFailed)
    return JSONResponse({"detail": exc.errors}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _unhandled_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "Internal server error"}, status_code=500)


class RequestIdMiddleware:
    """Echo ``X-Request-ID`` (or a fresh one) on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming[:128] if incoming.isprintable() and incoming else uuid.uuid4().hex

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodySizeLimitMiddleware:
    """Answer 413 up front when ``Content-Length`` exceeds the cap (streams are capped later)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
                response = JSONResponse(
                    {"detail": f"Request body is larger than {self.max_bytes} bytes."},
                    status_code=413,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def build_routes() -> list[BaseRoute]:
    """Every route of the API, one module per resource."""
    return [*health.routes, *users.routes, *emails.routes, *templates.routes]


def create_app(settings: Settings, *, address_policy: AddressPolicy | None = None) -> Starlette:
    """The ASGI app for these settings; its lifespan opens and closes every resource.

    ``address_policy`` is a TEST-ONLY widening of the outbound SSRF rule (fakes on loopback).
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with open_deps(settings, address_policy=address_policy) as deps:
            yield {"deps": deps}

    middleware = [
        Middleware(RequestIdMiddleware),
        Middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", "Idempotency-Key"],
            expose_headers=["X-Request-ID", "Retry-After"],
        ),
        Middleware(BodySizeLimitMiddleware, max_bytes=settings.scribe_max_body_bytes),
    ]
    exception_handlers: dict[Any, Any] = {
        errors.ScribeError: _scribe_error,
        RequestValidationFailed: _validation_error,
        HTTPException: _http_error,
        Exception: _unhandled_error,
    }
    return Starlette(
        routes=build_routes(),
        middleware=middleware,
        exception_handlers=exception_handlers,
        lifespan=lifespan,
    )
