"""Prometheus metrics, one registry per app (no process globals)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scribe.providers.account import Status
from scribe.providers.accounts import PROVIDERS, Accounts

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Label values are kept for the process's life: a client-chosen method ("FOO1", "FOO2", …)
# must not add a series per request.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass
class Metrics:
    """The service's metrics and the registry they belong to."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.http_requests = Counter(
            "scribe_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "scribe_http_request_seconds",
            "HTTP request latency by route template.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.database_up = Gauge(
            "scribe_database_up",
            "1 when the database answered at scrape time, 0 when it did not (the queue and "
            "provider gauges read from it are then absent, not stale).",
            registry=self.registry,
        )
        self.queue_items = Gauge(
            "scribe_queue_items",
            "Queue items by live status, read at scrape time.",
            ["status"],
            registry=self.registry,
        )
        self.provider_down = Gauge(
            "scribe_provider_down",
            "1 while a process reports an account of the provider down or paused, read at "
            "scrape time.",
            ["provider"],
            registry=self.registry,
        )
        self.account_waiting = Gauge(
            "scribe_provider_account_waiting",
            "1 per provider account that work waits for (state: down, paused, rate_limited), "
            "as any process reported it, read at scrape time.",
            ["provider", "account", "state"],
            registry=self.registry,
        )

        # Provider pacing in this process, copied from its account records at scrape time.
        self.pacing_wait = Gauge(
            "scribe_provider_pacing_wait_seconds",
            "Seconds calls waited for the provider account's rate limit (since start).",
            ["account"],
            registry=self.registry,
        )
        self.pacing_rate_limited = Gauge(
            "scribe_provider_rate_limited",
            "429 answers received from the provider account (since start).",
            ["account"],
            registry=self.registry,
        )
        self.pacing_paused = Gauge(
            "scribe_provider_paused",
            "1 while the provider account is paused (bad key, quota exhausted).",
            ["account"],
            registry=self.registry,
        )

    def observe_database(self, queue_counts: Mapping[str, int], waiting: Mapping[str, str]) -> None:
        """The figures the database gave at scrape time (``waiting``: the state of each account
        reported not up, by account)."""
        self.database_up.set(1)
        for status, count in queue_counts.items():
            self.queue_items.labels(status).set(count)
        down = {
            account.split(":", 1)[0]
            for account, state in waiting.items()
            if state in (Status.DOWN, Status.PAUSED)
        }
        for provider in PROVIDERS:
            self.provider_down.labels(provider).set(int(provider in down))
        self.account_waiting.clear()  # an account back up drops out
        for account, state in waiting.items():
            self.account_waiting.labels(account.split(":", 1)[0], account, state).set(1)

    def observe_database_unreachable(self) -> None:
        """The database did not answer: say so, and drop what it said last time (served again,
        the last known counts would read as current)."""
        self.database_up.set(0)
        self.queue_items.clear()
        self.provider_down.clear()
        self.account_waiting.clear()

    def observe_accounts(self, accounts: Accounts) -> None:
        """Copy every account's counters into the gauges (at scrape time)."""
        for account in accounts.all():
            paused = account.condition().status is Status.PAUSED
            self.pacing_wait.labels(account.name).set(round(account.stats.waited_seconds, 3))
            self.pacing_rate_limited.labels(account.name).set(account.stats.rate_limited)
            self.pacing_paused.labels(account.name).set(int(paused))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def route_template(scope: Scope) -> str:
    """The matched route's path template (bounded label cardinality), or 'unmatched'."""
    router = scope.get("router") or getattr(scope.get("app"), "router", None)
    for route in getattr(router, "routes", []):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


class MetricsMiddleware:
    """Count and time every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = route_template(scope)
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self.metrics.http_requests.labels(method, route, str(status)).inc()
            self.metrics.http_latency.labels(route).observe(time.perf_counter() - started)
