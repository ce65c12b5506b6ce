"""Every setting the service reads, in one place (pydantic-settings).

Environment variable names are the field names upper-cased (``DATABASE_URL``, ``SCRIBE_CONCURRENCY``
…). A bad value fails startup with a message naming the variable (see ``load_settings``).
"""

from __future__ import annotations

import ipaddress
import uuid
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from scribe.errors import ConfigurationError

CommaList = Annotated[list[str], NoDecode]

_PLACEHOLDER_VALUES = {"changeme", "change-me", "your-key-here", "xxx", "todo", "replace-me"}
_MODEL_PROVIDERS = ("anthropic", "openai", "offline")
MIN_JWT_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Service configuration; built once at startup and passed down."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    # Database
    database_url: SecretStr | None = None
    scribe_transaction_pooler: bool | None = None  # None = detect from port 6543
    scribe_listen: bool | None = None  # None = on unless in transaction-pooler mode
    scribe_db_pool_size: int = Field(default=3, ge=1, le=20)
    scribe_data_dir: Path = Path("~/.local/share/scribe")

    # HTTP
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    allowed_origins: CommaList = ["http://localhost:3000"]
    scribe_max_body_bytes: int = Field(default=1_000_000, ge=1024)
    scribe_rate_limit_per_minute: int = Field(default=600, ge=1)

    # Auth
    supabase_url: str | None = None
    supabase_jwt_secret: SecretStr | None = None
    # Admins: by Supabase user id (the token's sub), or by an email address the token says is
    # verified and not anonymous (scribe.http.auth.is_admin); both lists comma-separated.
    admin_user_ids: Annotated[list[uuid.UUID], NoDecode] = []
    admin_emails: CommaList = []

    # Models and providers
    template_parser_model: str = "anthropic:claude-haiku-4-5"
    email_composer_model: str = "anthropic:claude-sonnet-4-6"
    template_generator_model: str = "anthropic:claude-sonnet-4-6"
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    exa_api_key: SecretStr | None = None
    exa_base_url: str = "https://api.exa.ai"
    arxiv_api_url: str = "https://export.arxiv.org/api/query"
    llm_timeout_seconds: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=2, ge=0, le=10)
    # "tool" forces one tool call instead of output_config.format, for gateways without
    # structured outputs
    anthropic_structured_output: Literal["json_schema", "tool"] = "json_schema"

    # Pipeline
    scribe_chromium_path: str | None = None
    scribe_browser_pages: int = Field(default=1, ge=1, le=8)
    scribe_browser_idle_seconds: float = Field(default=60.0, gt=0)
    # Page text extraction, each page in its own child process (scribe.clients.extract): at
    # most this many at once per process, each with this CPU time and address space.
    scribe_extract_processes: int = Field(default=1, ge=1, le=16)
    scribe_extract_cpu_seconds: int = Field(default=5, ge=1, le=600)
    scribe_extract_memory_mb: int = Field(default=512, ge=128)
    pdf_allowed_hosts: CommaList = []
    scribe_template_limit: int = Field(default=5, ge=0)

    # Queue
    scribe_worker: bool = True  # run the consumer inside `scribe serve` (--no-worker sets false)
    scribe_concurrency: int = Field(default=8, ge=1, le=256)
    scribe_lease_seconds: float = Field(default=60.0, gt=0)
    scribe_poll_seconds: float = Field(default=2.0, gt=0)
    scribe_reaper_seconds: float = Field(default=30.0, gt=0)
    scribe_max_attempts: int = Field(default=3, ge=1, le=20)
    scribe_step_timeout_seconds: float = Field(default=120.0, gt=0)
    scribe_job_timeout_seconds: float = Field(default=300.0, gt=0)
    scribe_shutdown_grace_seconds: float = Field(default=20.0, ge=0)
    scribe_retention_days: float = Field(default=30.0, gt=0)
    scribe_sse_heartbeat_seconds: float = Field(default=15.0, gt=0)
    # Open queue streams per user and process (a newer one ends the oldest), and how long one
    # stream lives before it tells the browser to reconnect.
    scribe_sse_max_streams_per_user: int = Field(default=5, ge=1, le=100)
    scribe_sse_max_lifetime_seconds: float = Field(default=1800.0, gt=0)
    scribe_retry_base_seconds: float = Field(default=5.0, ge=0)
    scribe_retry_max_seconds: float = Field(default=600.0, ge=0)

    # ==== bounded caches ====
    # arXiv per-author cache: at most this many authors (oldest dropped first; 0 = no cache),
    # each kept this long; the pacing between arXiv requests (arXiv's terms: 3 s; 0 only for
    # local fakes and soaks)
    scribe_arxiv_cache_entries: int = Field(default=64, ge=0, le=100_000)
    scribe_arxiv_cache_seconds: float = Field(default=6 * 3600, ge=0)
    scribe_arxiv_min_interval_seconds: float = Field(default=3.0, ge=0)

    # ==== work bounds: per-user quotas, bounded PDF parsing, stored-output caps ====
    scribe_queue_daily_items: int = Field(default=500, ge=0)  # items queued per user per UTC day
    scribe_queue_max_pending: int = Field(default=200, ge=0)  # a user's pending+processing items
    scribe_template_attempts_per_day: int = Field(default=20, ge=0)  # generations, failed too
    scribe_pdf_parses: int = Field(default=1, ge=1, le=16)  # concurrent PDF parses per process
    scribe_pdf_cpu_seconds: int = Field(default=5, ge=1, le=600)  # CPU time of one parse
    scribe_pdf_memory_mb: int = Field(default=512, ge=64)  # address space of one parse
    scribe_pdf_max_pages: int = Field(default=10, ge=1, le=1000)  # pages read from a resume
    # How long a parse waits for a busy slot before 429 + Retry-After (a normal resume reads in
    # well under a second; a hostile one holds its slot up to its deadline).
    scribe_pdf_wait_seconds: float = Field(default=5.0, ge=0, le=60)
    # The memory the whole service may use, its children (PDF parses, Chromium) included: the
    # systemd unit's MemoryMax. A PDF parse gets what this leaves after the service's current
    # use (at most SCRIBE_PDF_MEMORY_MB); 0 = no budget, every parse gets SCRIBE_PDF_MEMORY_MB.
    scribe_memory_budget_mb: int = Field(default=750, ge=0)
    scribe_max_email_chars: int = Field(default=20_000, ge=1000)  # stored email text

    # ==== HTTP limits, client identity, JWKS ====
    # Enforced by scribe.http.guard on every connection uvicorn accepts (any bind address).
    scribe_http_max_header_bytes: int = Field(default=16_384, ge=1024, le=1_048_576)
    scribe_http_max_headers: int = Field(default=100, ge=10, le=10_000)
    scribe_http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    scribe_http_body_timeout_seconds: float = Field(default=30.0, gt=0)
    scribe_http_keepalive_seconds: float = Field(default=5.0, gt=0)
    scribe_http_max_connections: int = Field(default=1000, ge=1)
    # Per client address (IPv6 per /64); the trusted proxies' connections count only above.
    scribe_http_max_connections_per_peer: int = Field(default=64, ge=1)
    # A client that reads nothing of an answer for this long is disconnected.
    scribe_http_send_timeout_seconds: float = Field(default=30.0, gt=0)
    # Peers whose CF-Connecting-IP / X-Forwarded-For name the real client (IPs or CIDRs).
    scribe_cf_trusted_proxies: CommaList = ["127.0.0.1/32", "::1/128"]
    scribe_xff_trusted_proxies: CommaList = []

    # ==== whose fault (attempt accounting) and provider circuit breakers ====
    # Faults that happen *to* an item (worker lost, database away, provider down) charge no
    # attempt; they are bounded by the item's age and by how often it lost its worker.
    scribe_max_item_age_seconds: float = Field(default=86400.0, gt=0)
    scribe_max_crashes: int = Field(default=10, ge=1, le=1000)
    scribe_breaker_threshold: int = Field(default=3, ge=1, le=100)
    scribe_breaker_probe_seconds: float = Field(default=2.0, gt=0)
    scribe_breaker_probe_max_seconds: float = Field(default=5.0, gt=0)

    # ==== provider pacing ====
    # Pacers size themselves from each provider's rate-limit headers; these only cap them lower
    # (per account, per minute; unset = what the provider reports). Exa sends no headers: its
    # pace is this many requests per minute (Exa's default plan: 5 per second).
    scribe_pacing_requests_per_minute: float | None = Field(default=None, gt=0)
    scribe_pacing_input_tokens_per_minute: float | None = Field(default=None, gt=0)
    scribe_pacing_output_tokens_per_minute: float | None = Field(default=None, gt=0)
    scribe_exa_requests_per_minute: float = Field(default=300.0, gt=0)

    # ==== pacing: dividing each provider account among the processes using it ====
    # Every INTERVAL seconds each process records the accounts it used in the last WINDOW
    # seconds; an account takes 1/n of itself, n the processes using it (providers/sharing.py).
    scribe_pacing_share_interval_seconds: float = Field(default=2.0, gt=0)
    scribe_pacing_share_window_seconds: float = Field(default=10.0, gt=0)

    # Admin lists the frontend reads without a limit (/api/admin/users, /api/admin/errors): their
    # default and largest length, so they hold every row the overview's cards count up to this.
    scribe_admin_list_limit: int = Field(default=10_000, ge=100, le=100_000)

    # Observability
    logfire_token: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    _split = field_validator(
        "allowed_origins",
        "admin_emails",
        "admin_user_ids",
        "pdf_allowed_hosts",
        "scribe_cf_trusted_proxies",
        "scribe_xff_trusted_proxies",
        mode="before",
    )(_split_commas)

    @field_validator("admin_emails")
    @classmethod
    def _lower_emails(cls, value: list[str]) -> list[str]:
        return [email.strip().lower() for email in value if email.strip()]

    @field_validator(
        "database_url", "supabase_jwt_secret", "anthropic_api_key", "openai_api_key", "exa_api_key"
    )
    @classmethod
    def _reject_placeholders(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value().strip()
        if not raw:
            return None
        if raw.lower() in _PLACEHOLDER_VALUES or raw.startswith("<"):
            raise ValueError("is a placeholder value, not a real one")
        return SecretStr(raw)

    @field_validator("supabase_jwt_secret")
    @classmethod
    def _check_jwt_secret_length(cls, value: SecretStr | None) -> SecretStr | None:
        # HS256 with a short secret can be brute-forced offline from one token.
        if value is not None and len(value.get_secret_value().encode()) < MIN_JWT_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_JWT_SECRET_BYTES} bytes long")
        return value

    @field_validator("scribe_cf_trusted_proxies", "scribe_xff_trusted_proxies")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"{entry[:50]!r} is not an IP address or network") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and urlsplit(value.get_secret_value()).scheme not in (
            "postgres",
            "postgresql",
        ):
            raise ValueError("must start with postgresql:// or postgres://")
        return value

    @field_validator(
        "supabase_url", "anthropic_base_url", "openai_base_url", "exa_base_url", "arxiv_api_url"
    )
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL")
        return value.strip().rstrip("/")

    @field_validator("template_parser_model", "email_composer_model", "template_generator_model")
    @classmethod
    def _check_model_id(cls, value: str) -> str:
        provider, _, model = value.partition(":")
        if provider not in _MODEL_PROVIDERS or (provider != "offline" and not model):
            raise ValueError("must look like anthropic:<model>, openai:<model> or offline")
        return value

    @model_validator(mode="after")
    def _check_openai(self) -> Settings:
        uses_openai = any(
            m.startswith("openai:")
            for m in (
                self.template_parser_model,
                self.email_composer_model,
                self.template_generator_model,
            )
        )
        if uses_openai and self.openai_api_key and not self.openai_base_url:
            raise ValueError("OPENAI_BASE_URL is required when a model uses openai:<model>")
        return self

    @property
    def data_dir(self) -> Path:
        """The data directory, with ``~`` expanded."""
        return self.scribe_data_dir.expanduser()

    @property
    def transaction_pooler(self) -> bool:
        """True when the database sits behind a transaction pooler (no session state)."""
        if self.scribe_transaction_pooler is not None:
            return self.scribe_transaction_pooler
        if self.database_url is None:
            return False
        return urlsplit(self.database_url.get_secret_value()).port == 6543

    @property
    def listen_enabled(self) -> bool:
        """Whether the consumer may LISTEN for wake-ups (off behind transaction poolers)."""
        if self.scribe_listen is not None:
            return self.scribe_listen
        return not self.transaction_pooler

    @property
    def jwt_issuer(self) -> str | None:
        """Expected ``iss`` claim of Supabase tokens."""
        return f"{self.supabase_url}/auth/v1" if self.supabase_url else None

    @property
    def pdf_hosts(self) -> list[str]:
        """Hosts resumes may be downloaded from (default: the Supabase storage host)."""
        if self.pdf_allowed_hosts:
            return [host.lower() for host in self.pdf_allowed_hosts]
        if self.supabase_url:
            host = urlsplit(self.supabase_url).hostname
            return [host.lower()] if host else []
        return []


def disabled_features(settings: Settings) -> list[str]:
    """What will not work for lack of a setting, one sentence each naming the setting (logged as
    a WARNING at start, since nothing else would say so until a user runs into it)."""
    missing = []
    if not settings.pdf_hosts:
        missing.append(
            "no PDF_ALLOWED_HOSTS and no SUPABASE_URL: no host may serve resume PDFs, so every "
            "template generation (POST /api/templates/) fails with \"the PDF's address is not "
            'allowed"; set PDF_ALLOWED_HOSTS (or SUPABASE_URL, whose host is the default)'
        )
    if not settings.admin_emails:
        missing.append(
            "ADMIN_EMAILS is empty: the admin API (/api/admin/*) answers 403 to everyone, so the "
            "admin page cannot be used"
        )
    return missing


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment (and overrides); raise ConfigurationError naming the
    offending variables when a value is invalid."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper() or "settings"
            problems.append(f"{name}: {error['msg']}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from exc
