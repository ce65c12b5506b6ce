"""The project's one exception hierarchy. Only ``scribe.app`` maps these to HTTP status codes."""

from __future__ import annotations

from typing import Any


class ScribeError(Exception):
    """Base of every error the project raises on purpose."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        """The human-readable message, safe to show to a client."""
        return str(self)


class ConfigurationError(ScribeError):
    """A setting is missing or invalid; the service cannot start."""


class TryLater(ScribeError):
    """Not now: what was asked for is unavailable for the moment (a provider, a rate, a slot),
    and asking again may succeed; ``retry_after`` is how many seconds to wait, when known."""

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --- request-level errors (the API maps each to one status code) ---


class InvalidRequest(ScribeError):
    """The request is malformed (bad id, bad parameter)."""


class RequestValidationFailed(InvalidRequest):
    """A body or query failed validation; rendered as 422 with a list of {loc, msg, type}."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("validation failed")
        self.errors = errors


class PdfTooExpensive(InvalidRequest):
    """The PDF broke a parsing limit (CPU time, memory, wall time); 422."""


class AuthenticationError(ScribeError):
    """The bearer token is missing, malformed, expired or otherwise not acceptable."""


class AuthUnavailable(ScribeError):
    """The identity provider (JWKS) cannot be reached, so tokens cannot be checked right now."""


class PermissionDenied(ScribeError):
    """The caller is authenticated but may not do this."""


class ProfileNotInitialized(PermissionDenied):
    """User profile not initialized. Please call POST /api/user/init first."""


class NotFound(ScribeError):
    """The resource does not exist or does not belong to the caller."""


class Conflict(ScribeError):
    """The request conflicts with existing data."""


class QuotaExceeded(TryLater):
    """A per-user limit or request rate was exceeded."""


class QuotaUsedUp(QuotaExceeded):
    """A per-user quota (a daily amount, items at once) is used up until it resets: asking again
    soon cannot help, so it is no rate limit (409: the frontend shows it and does not retry)."""


class PayloadTooLarge(ScribeError):
    """The request body is larger than allowed."""


class DatabaseUnavailable(ScribeError):
    """The database cannot be reached."""


class DatabaseFull(DatabaseUnavailable):
    """The database's disk is full: it refuses to store anything until space is freed (what
    was stored before is kept); an outage like any other, retried, never charged to an item."""


# --- operator errors (start-up and data commands; scribe.cli maps each to an exit status) ---


class DataDirectoryUnusable(ScribeError):
    """The data directory cannot be used by this process (owner, permissions)."""


class PostgresVersionMismatch(ScribeError):
    """The data directory was written by another PostgreSQL major than this install runs (or an
    upgrade of it was interrupted): ``scribe db upgrade`` carries it across."""


class AddressInUse(ScribeError):
    """The HTTP address cannot be bound (another process listens there, or it is not allowed)."""


class DataCommandFailed(ScribeError):
    """A backup, restore or upgrade was refused or failed; what it left is said in the message."""


class ConsumerCrashed(ScribeError):
    """A background task of the queue consumer (heartbeat, reaper) died unexpectedly."""


# --- pipeline errors (steps raise these; only the queue decides what happens next) ---


class StepError(ScribeError):
    """A pipeline step could not complete."""


class TransientStepError(StepError, TryLater):
    """Retry later, charged to the item: its own step timed out or failed in a way a later try
    may not repeat (an upstream that is unavailable is ``UpstreamUnavailable``, not this)."""


class PermanentStepError(StepError):
    """Retrying cannot help: the item's own input cannot be processed (e.g. the model keeps
    answering it with malformed output)."""


class FetchRefused(PermanentStepError):
    """An outbound fetch was refused (SSRF guard, disallowed host, size or type cap)."""


class NonPublicAddress(FetchRefused):
    """An outbound fetch was refused because its host resolves to a non-public address."""


# --- upstream errors (an external provider's answer, by meaning; the queue and HTTP map them) ---


class UpstreamUnavailable(TryLater):
    """The provider cannot serve now (busy, 5xx, 429, timeout, connection, paused account):
    wait and try again; not the item's fault, so the queue charges no attempt; HTTP 503.

    ``provider`` names the provider account (``anthropic:claude-sonnet``, ``exa``): its circuit
    breaker is fed with it. ``retry_after`` is the provider's own wait, when it named one."""

    def __init__(
        self, message: str = "", *, provider: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message, retry_after)
        self.provider = provider


class ProviderPaused(UpstreamUnavailable):
    """The provider account takes no calls now (refused key or credit, or down between
    probes): retry after its wait; not the item's fault."""


class UnknownProvider(InvalidRequest):
    """No provider or provider account goes by the name given (``scribe providers resume``)."""


class UpstreamRejected(ScribeError):
    """The provider refused this request (a 4xx other than rate limits and auth): retrying
    cannot help; the item fails, HTTP 502."""

    def __init__(self, message: str = "", *, provider: str) -> None:
        super().__init__(message)
        self.provider = provider


class MalformedOutput(ScribeError):
    """The model's answer did not match the requested schema (the LLM client asks once more,
    then the item fails permanently)."""


class ExternalServiceError(ScribeError):
    """An optional external service (arXiv) failed; the caller degrades instead of failing."""
