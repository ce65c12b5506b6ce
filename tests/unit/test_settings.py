"""Settings: bad values name their variable; pooler detection; comma lists."""

from __future__ import annotations

import pytest

from scribe.db.pool import connect_kwargs
from scribe.errors import ConfigurationError
from scribe.settings import Settings, disabled_features, load_settings


def _load(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings(_env_file=None)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SCRIBE_CONCURRENCY", "abc"),
        ("SCRIBE_CONCURRENCY", "0"),
        ("DATABASE_URL", "mysql://x"),
        ("ANTHROPIC_API_KEY", "changeme"),
        ("EXA_API_KEY", "<your key>"),
        ("SUPABASE_JWT_SECRET", "your-key-here"),
        ("PORT", "70000"),
        ("SUPABASE_URL", "ftp://project.supabase.co"),
        ("EMAIL_COMPOSER_MODEL", "gpt-4"),
        ("LOG_LEVEL", "LOUD"),
        ("SCRIBE_TRANSACTION_POOLER", "perhaps"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        _load(monkeypatch, **{variable: value})
    message = str(caught.value)
    assert message.startswith("invalid configuration: ")
    assert f"{variable}:" in message
    if not value.isdigit():  # raw values (possibly secrets) are never echoed
        assert value not in message


def test_secrets_never_appear_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError) as caught:
        _load(monkeypatch, DATABASE_URL="mysql://root:hunter2@db/x")
    assert "hunter2" not in str(caught.value)


def test_several_bad_values_are_all_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError) as caught:
        _load(monkeypatch, PORT="x", SCRIBE_CONCURRENCY="y")
    assert "PORT:" in str(caught.value) and "SCRIBE_CONCURRENCY:" in str(caught.value)


def test_defaults_work_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _load(monkeypatch)
    assert settings.database_url is None
    assert settings.port == 8000 and settings.host == "127.0.0.1"
    assert settings.allowed_origins == ["http://localhost:3000"]
    assert settings.jwt_issuer is None
    assert settings.transaction_pooler is False and settings.listen_enabled is True
    assert settings.data_dir.is_absolute()


def test_empty_secret_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _load(monkeypatch, ANTHROPIC_API_KEY="  ").anthropic_api_key is None


def test_comma_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _load(
        monkeypatch,
        ALLOWED_ORIGINS="https://app.example.com, http://localhost:3000,",
        ADMIN_EMAILS="Ada@Uni.edu,bob@uni.edu",
        PDF_ALLOWED_HOSTS="",
    )
    assert settings.allowed_origins == ["https://app.example.com", "http://localhost:3000"]
    assert settings.admin_emails == ["ada@uni.edu", "bob@uni.edu"]
    assert settings.pdf_allowed_hosts == []


def test_supabase_url_gives_issuer_and_pdf_host(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _load(monkeypatch, SUPABASE_URL="https://abc.supabase.co/")
    assert settings.supabase_url == "https://abc.supabase.co"
    assert settings.jwt_issuer == "https://abc.supabase.co/auth/v1"
    assert settings.pdf_hosts == ["abc.supabase.co"]


@pytest.mark.parametrize(
    ("url", "explicit", "expected"),
    [
        ("postgresql://u:p@db.example.com:6543/postgres", None, True),
        ("postgresql://u:p@db.example.com:5432/postgres", None, False),
        ("postgresql://u:p@db.example.com/postgres", None, False),
        ("postgresql://u:p@db.example.com:6543/postgres", "false", False),
        ("postgresql://u:p@pgbouncer.internal:6432/postgres", "true", True),
    ],
)
def test_transaction_pooler_detection(
    monkeypatch: pytest.MonkeyPatch, url: str, explicit: str | None, expected: bool
) -> None:
    env = {"DATABASE_URL": url}
    if explicit is not None:
        env["SCRIBE_TRANSACTION_POOLER"] = explicit
    settings = _load(monkeypatch, **env)
    assert settings.transaction_pooler is expected
    assert settings.listen_enabled is not expected


def test_listen_can_be_forced_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _load(monkeypatch, SCRIBE_LISTEN="false").listen_enabled is False


def test_pooler_mode_disables_the_statement_cache() -> None:
    assert connect_kwargs(True)["statement_cache_size"] == 0
    assert "statement_cache_size" not in connect_kwargs(False)


def test_short_jwt_secret_fails_startup_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        _load(monkeypatch, SUPABASE_JWT_SECRET="abc")
    assert "SUPABASE_JWT_SECRET:" in str(caught.value)
    assert "32 bytes" in str(caught.value)
    assert "abc" not in str(caught.value)


def test_jwt_secret_of_32_bytes_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _load(monkeypatch, SUPABASE_JWT_SECRET="s" * 32)
    assert settings.supabase_jwt_secret is not None


def test_trusted_proxy_entries_must_be_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError) as caught:
        _load(monkeypatch, SCRIBE_XFF_TRUSTED_PROXIES="10.0.0.0/8,cloudflare")
    assert "SCRIBE_XFF_TRUSTED_PROXIES:" in str(caught.value)


def test_a_missing_setting_that_disables_a_feature_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pdf, admin = disabled_features(_load(monkeypatch))
    assert "PDF_ALLOWED_HOSTS" in pdf and "SUPABASE_URL" in pdf
    assert "POST /api/templates/" in pdf and "the PDF's address is not allowed" in pdf
    assert "ADMIN_EMAILS" in admin and "403" in admin


def test_either_pdf_setting_enables_template_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    configured = {"ADMIN_EMAILS": "boss@uni.edu"}
    assert (
        disabled_features(_load(monkeypatch, PDF_ALLOWED_HOSTS="files.example", **configured)) == []
    )
    monkeypatch.delenv("PDF_ALLOWED_HOSTS")
    supabase = _load(monkeypatch, SUPABASE_URL="https://abc.supabase.co", **configured)
    assert disabled_features(supabase) == []
