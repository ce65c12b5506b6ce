"""The project's one exception hierarchy. Only ``scribe.app`` maps these to HTTP status codes."""

from __future__ import annotations


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


# --- request-level errors (the API maps each to one status code) ---


class InvalidRequest(ScribeError):
    """The request is malformed (bad id, bad parameter)."""


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


class QuotaExceeded(ScribeError):
    """A per-user limit or request rate was exceeded."""

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(ScribeError):
    """The request body is larger than allowed."""


class DatabaseUnavailable(ScribeError):
    """The database cannot be reached."""


# --- pipeline errors (steps raise these; only the queue decides what happens next) ---


class StepError(ScribeError):
    """A pipeline step could not complete."""


class TransientStepError(StepError):
    """Retry later: a timeout, connection error, 429, 5xx or overload.

    ``provider`` names the external provider at fault (anthropic, openai, exa, arxiv) when the
    error is the provider's, not the item's: the queue then charges no attempt and feeds the
    provider's circuit breaker (scribe.clients.providers)."""

    def __init__(
        self, message: str = "", retry_after: float | None = None, provider: str | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.provider = provider


class PermanentStepError(StepError):
    """Retrying cannot help: invalid input, a rejected key, another 4xx."""


class FetchRefused(PermanentStepError):
    """An outbound fetch was refused (SSRF guard, disallowed host, size or type cap)."""


class ExternalServiceError(ScribeError):
    """An optional external service (arXiv) failed; the caller degrades instead of failing."""
