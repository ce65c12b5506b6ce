"""GET / and GET /health."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from scribe import __version__
from scribe.api.common import ApiModel, format_utc, json_response
from scribe.api.openapi import Operation
from scribe.db import health as health_db
from scribe.db import providers as providers_db
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
    providers: dict[str, str] | None = None  # provider -> what is wrong (those reported down)


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
    """Service health; 503 when the database is unreachable or the embedded server's disk is
    full; 200 "degraded: …" while a provider is down or an account is paused (bad key, no
    credit: the queue waits for it)."""
    deps = get_deps(request)
    try:
        queue = await health_db.queue_counts(deps.pool)
        down = await providers_db.providers_down(deps.pool)
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
    full = None
    if deps.settings.database_url is None:  # the embedded server: its data directory is here
        full = await health_db.disk_full(deps.settings.data_dir)
    if full is not None:  # reads still work; nothing new can be stored
        return json_response(
            {
                "status": f"unhealthy: database {full}",
                "service": SERVICE,
                "version": __version__,
                "database": full,
                "queue": queue,
            },
            503,
        )
    providers = {p.provider: f"{_problem(p.reason)} since {format_utc(p.since)}" for p in down}
    # A paused account (bad key, no credit) is this process's own knowledge: items wait for it.
    providers.update(deps.clients.pacers.paused())
    status = "healthy"
    if providers:
        status = "degraded: " + "; ".join(f"{name} {what}" for name, what in providers.items())
    return json_response(
        {
            "status": status,
            "service": SERVICE,
            "version": __version__,
            "database": "connected",
            "queue": queue,
            "providers": providers,
        }
    )


def _problem(reason: str | None) -> str:
    """ "overloaded" for 529/overload/429 reports, else "unavailable"."""
    text = (reason or "").lower()
    if any(mark in text for mark in ("529", "overload", "429", "rate")):
        return "overloaded"
    return "unavailable"


operations = [
    Operation("GET", "/", "Service index.", response=RootOut, auth=False, endpoint=root),
    Operation(
        "GET",
        "/health",
        "Health; 503 when the database is unreachable or its disk is full.",
        response=HealthOut,
        auth=False,
        endpoint=health,
    ),
]
