"""GET / and GET /health."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scribe import __version__
from scribe.api.common import ApiModel, json_response
from scribe.api.openapi import Operation
from scribe.db import health as health_db
from scribe.deps import get_deps
from scribe.errors import DatabaseUnavailable

SERVICE = "scribe"


class HealthOut(ApiModel):
    """GET /health."""

    status: str
    service: str
    version: str
    database: str
    queue: dict[str, int] | None


class RootOut(ApiModel):
    """GET /."""

    service: str
    version: str
    health: str
    docs: str


async def root(request: Request) -> Response:
    """A small index of the service."""
    return json_response(
        {"service": SERVICE, "version": __version__, "health": "/health", "docs": "/docs"}
    )


async def health(request: Request) -> Response:
    """Service health; 503 when the database is unreachable; 200 "degraded: …" while a provider
    account is paused (bad key, no credit: the queue waits for it)."""
    deps = get_deps(request)
    try:
        queue = await health_db.queue_counts(deps.pool)
    except DatabaseUnavailable:
        return json_response(
            {
                "status": "unhealthy",
                "service": SERVICE,
                "version": __version__,
                "database": "unreachable",
                "queue": None,
            },
            503,
        )
    body: dict[str, object] = {
        "status": "healthy",
        "service": SERVICE,
        "version": __version__,
        "database": "connected",
        "queue": queue,
    }
    paused = deps.clients.pacers.paused()  # bad key or no credit: items wait, nothing fails
    if paused:
        body["status"] = "degraded: " + "; ".join(paused)
    return json_response(body)


routes = [
    Route("/", root, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
]

operations = [
    Operation("GET", "/", "Service index.", response=RootOut, auth=False),
    Operation(
        "GET",
        "/health",
        "Health; 503 when the database is unreachable.",
        response=HealthOut,
        auth=False,
    ),
]
