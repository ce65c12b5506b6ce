"""GET / and GET /health."""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from scribe import __version__
from scribe.api.common import ApiModel, format_utc, json_response
from scribe.api.openapi import Operation
from scribe.db import health as health_db
from scribe.db import providers as providers_db
from scribe.deps import get_deps
from scribe.errors import DatabaseUnavailable
from scribe.providers.account import Condition

SERVICE = "scribe"


class HealthOut(ApiModel):
    """GET /health."""

    status: str
    service: str
    version: str
    database: str
    queue: dict[str, int] | None
    # Account (or provider) -> what is wrong, for each that work waits on: down, paused,
    # rate-limited, as any process reported it or this one knows it.
    providers: dict[str, str] | None = None
    waiting_on: dict[str, list[str]] | None = None  # provider -> its accounts in ``providers``


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
    full; 200 "degraded: …" while work waits on a provider account: down, paused (bad key, no
    credit) or rate-limited."""
    deps = get_deps(request)
    try:
        queue = await health_db.queue_counts(deps.pool)
        waiting = await providers_db.providers_waiting(deps.pool)
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
    providers = {p.provider: _detail(p.state, p.reason, p.since) for p in waiting}
    # This process's own accounts are known here first (shared within the sharing interval).
    providers.update({c.account: _describe(c) for c in deps.clients.accounts.waiting()})
    waiting_on: dict[str, list[str]] = {}
    for name in sorted(providers):
        waiting_on.setdefault(name.split(":", 1)[0], []).append(name)
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
            "waiting_on": waiting_on,
        }
    )


def _describe(condition: Condition) -> str:
    """What this process knows of one of its accounts that is not up, in one line."""
    since = condition.since.isoformat(timespec="seconds").replace("+00:00", "Z")
    return f"{condition.status} since {since}: {condition.reason}"


def _detail(state: str, reason: str | None, since: datetime) -> str:
    """What the provider_states row of an account not up says, in one line."""
    if state == "down":
        return f"{_problem(reason)} since {format_utc(since)}"
    return f"{state.replace('_', '-')} since {format_utc(since)}: {reason}"


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
