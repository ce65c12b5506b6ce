"""``create_app(settings)``: the Starlette app assembled from data (the routes of ``scribe.api``,
the middleware stack of ``scribe.http``, the error handlers, the lifespan). The only module that
knows HTTP status codes for the project's errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from scribe import errors
from scribe.api import admin, admin_queue, emails, health, queue, queue_stream, templates, users
from scribe.api.openapi import Operation, docs_operations
from scribe.clients.netguard import AddressPolicy
from scribe.db import health as health_db
from scribe.db import providers as providers_db
from scribe.db.outage import note_refused
from scribe.deps import get_deps, open_deps
from scribe.http.guard import ProxiedClientShare
from scribe.http.log_throttle import throttle_logger
from scribe.http.metrics import Metrics, MetricsMiddleware
from scribe.http.middleware.body_size import BodySizeLimitMiddleware
from scribe.http.middleware.database_outage import DatabaseOutageMiddleware
from scribe.http.middleware.request_id import RequestIdMiddleware
from scribe.http.middleware.security_headers import SecurityHeadersMiddleware
from scribe.http.middleware.unhandled_error import UnhandledErrorMiddleware
from scribe.http.rate_limit import ClientIdentity, RateLimitMiddleware
from scribe.process.background import running
from scribe.process.systemd import notify, watchdog_interval, watchdog_loop
from scribe.settings import Settings, disabled_features
from scribe.worker import PipelineFactory, supervised_consumer

log = logging.getLogger(__name__)

# Most specific first: the first matching class decides the status.
STATUS_BY_ERROR: list[tuple[type[errors.ScribeError], int]] = [
    (errors.ProfileNotInitialized, 403),
    (errors.PdfTooExpensive, 422),
    (errors.InvalidRequest, 400),
    (errors.AuthenticationError, 401),
    (errors.PermissionDenied, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.PayloadTooLarge, 413),
    (errors.QuotaUsedUp, 409),  # final until it resets: the frontend retries a 429 blindly
    (errors.QuotaExceeded, 429),
    (errors.AuthUnavailable, 503),
    (errors.DatabaseUnavailable, 503),
    (errors.UpstreamUnavailable, 503),  # the model is busy or away; try again later
    (errors.UpstreamRejected, 502),  # the model refused or answered unusably
]


DATABASE_UNAVAILABLE_DETAIL = "The database is unavailable; try again shortly."
DATABASE_FULL_DETAIL = (
    "The database's disk is full, so nothing was stored; try again once space is freed."
)


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
    if isinstance(exc, errors.TryLater) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    detail = exc.message
    if isinstance(exc, errors.DatabaseUnavailable):
        # Logged once per outage by DatabaseOutageMiddleware, not with a traceback per request;
        # the exception's name is for the operator, not the client.
        note_refused(exc)
        full = isinstance(exc, errors.DatabaseFull)
        detail = DATABASE_FULL_DETAIL if full else DATABASE_UNAVAILABLE_DETAIL
    elif isinstance(exc, errors.AuthUnavailable):
        # Expected during an identity-provider outage (every ES256 request answers it): one line,
        # no traceback; JwksCache logs the failed fetch itself.
        log.warning("request refused: %s", exc)
    elif status >= 500:
        log.error("request failed: %s", exc, exc_info=exc)
        detail = exc.message if status in (502, 503) else "Internal server error"
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.RequestValidationFailed)
    return JSONResponse({"detail": exc.errors}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _client_disconnected(request: Request, exc: Exception) -> Response:
    # The client went away mid-body (closed tab, lost network, body timeout): nobody reads this
    # answer, and it is not a server error, so one INFO line and no traceback.
    log.info(
        "client disconnected before sending its whole body: %s %s", request.method, request.url.path
    )
    return JSONResponse({"detail": "Client disconnected."}, status_code=400)


async def _unhandled_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "Internal server error"}, status_code=500)


API_MODULES = (health, users, emails, queue, queue_stream, templates, admin, admin_queue)


def build_routes(metrics: Metrics) -> list[BaseRoute]:
    """Every route, from its one declaration (an ``Operation``): the API (one module per
    resource), the metrics, and the docs describing them all."""
    operations = [op for module in API_MODULES for op in module.operations]
    operations.append(metrics_operation(metrics))
    operations += docs_operations(operations)
    return [op.route() for op in operations]


def metrics_operation(metrics: Metrics) -> Operation:
    """GET /metrics: Prometheus text, with live queue counts read at scrape time."""

    async def render(request: Request) -> Response:
        try:
            counts = await health_db.queue_counts(get_deps(request).pool)
            waiting = await providers_db.providers_waiting(get_deps(request).pool)
        except errors.DatabaseUnavailable:
            metrics.observe_database_unreachable()
        else:
            metrics.observe_database(counts, {p.provider: p.state for p in waiting})
        metrics.observe_accounts(get_deps(request).clients.accounts)
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return Operation(
        "GET",
        "/metrics",
        "Prometheus metrics.",
        auth=False,
        content_type="text/plain",
        endpoint=render,
    )


@asynccontextmanager
async def _watchdog() -> AsyncIterator[None]:
    """Ping systemd's watchdog from a tracked task while the app runs (if systemd asked)."""
    interval = watchdog_interval()
    if interval is None:
        yield
        return
    async with running(
        watchdog_loop(interval),
        name="systemd-watchdog",
        if_it_dies="stopped pinging; systemd will restart the service",
    ):
        yield


def create_app(
    settings: Settings,
    pipeline_factory: PipelineFactory | None = None,
    *,
    address_policy: AddressPolicy | None = None,
) -> Starlette:
    """The ASGI app for these settings; its lifespan opens and closes every resource, including
    the queue consumer (unless SCRIBE_WORKER=false) running ``pipeline_factory``'s pipeline.

    ``address_policy`` is a TEST-ONLY widening of the outbound SSRF rule (fakes on loopback).
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        for warning in disabled_features(settings):
            log.warning(warning)
        async with open_deps(settings, address_policy=address_policy) as deps, _watchdog():
            streams = queue_stream.StreamSlots(settings.scribe_sse_max_streams_per_user)
            state = {"deps": deps, "streams": streams}
            if settings.scribe_worker:
                async with supervised_consumer(deps, pipeline_factory) as release_now:
                    # Read by `scribe serve` on a second SIGTERM/SIGINT.
                    app.state.release_queue_now = release_now
                    notify("READY=1")
                    yield state
                    notify("STOPPING=1")
            else:
                notify("READY=1")
                yield state
                notify("STOPPING=1")

    throttle_logger(log)  # a flood of one failure logs one line (and traceback) per window
    metrics = Metrics()
    middleware = [
        Middleware(SecurityHeadersMiddleware),
        Middleware(MetricsMiddleware, metrics=metrics),
        Middleware(RequestIdMiddleware),
        Middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", "Idempotency-Key"],
            expose_headers=["X-Request-ID", "Retry-After"],
        ),
        Middleware(
            ProxiedClientShare,
            identity=ClientIdentity.from_settings(settings),
            limit=settings.scribe_http_max_connections_per_peer,
        ),
        Middleware(
            RateLimitMiddleware,
            rate_per_minute=settings.scribe_rate_limit_per_minute,
            identity=ClientIdentity.from_settings(settings),
        ),
        Middleware(BodySizeLimitMiddleware, max_bytes=settings.scribe_max_body_bytes),
        Middleware(UnhandledErrorMiddleware, handler=_unhandled_error),
        Middleware(DatabaseOutageMiddleware),
    ]
    exception_handlers: dict[Any, Any] = {
        errors.ScribeError: _scribe_error,
        errors.RequestValidationFailed: _validation_error,
        HTTPException: _http_error,
        ClientDisconnect: _client_disconnected,
        Exception: _unhandled_error,
    }
    return Starlette(
        routes=build_routes(metrics),
        middleware=middleware,
        exception_handlers=exception_handlers,
        lifespan=lifespan,
    )
