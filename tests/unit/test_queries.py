"""The named-queries loader (scribe/db/queries.py)."""

from __future__ import annotations

import pytest

from scribe.db.queries import Query, load_queries, parse_queries

GOOD = """\
-- File comment before any query is ignored.

-- get_user --
-- One user by id.
SELECT id
FROM users WHERE id = $1

-- ===== foundation =====

-- count_users --
-- How many users exist.
SELECT count(*) FROM users
"""


def test_parses_names_descriptions_and_statements() -> None:
    assert parse_queries(GOOD) == {
        "get_user": Query("get_user", "One user by id.", "SELECT id\nFROM users WHERE id = $1"),
        "count_users": Query("count_users", "How many users exist.", "SELECT count(*) FROM users"),
    }


def test_duplicate_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="'get_user' is defined twice"):
        parse_queries(GOOD + "\n-- get_user --\n-- Again.\nSELECT 2\n")


def test_missing_description_is_rejected() -> None:
    with pytest.raises(ValueError, match="'bare' has no description"):
        parse_queries("-- bare --\nSELECT 1\n")


def test_missing_statement_is_rejected() -> None:
    with pytest.raises(ValueError, match="'empty' has no statement"):
        parse_queries("-- empty --\n-- Nothing follows.\n\n-- next --\n-- Next.\nSELECT 1\n")


def test_shipped_file_parses_and_every_query_has_a_description() -> None:
    queries = load_queries()
    assert {"get_user", "list_emails", "insert_template"} <= set(queries)
    for query in queries.values():
        assert query.description and query.sql
        assert "=====" not in query.sql
