"""Loads the named queries of ``queries.sql`` (procrastinate's format).

Each entry is a ``-- name --`` header line, a ``-- description`` line, then the statement with
``$1…$n`` parameters, up to the next header. Section banners (``-- ===== name =====``) separate
groups of queries and belong to none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- ([a-z_][a-z0-9_]*) --$")
_BANNER = re.compile(r"^-- =+ .* =+$")


@dataclass(frozen=True, slots=True)
class Query:
    """One named SQL statement."""

    name: str
    description: str
    sql: str


def parse_queries(text: str) -> dict[str, Query]:
    """Parse the queries file format; raise ValueError on a malformed or duplicate entry."""
    queries: dict[str, Query] = {}
    name: str | None = None
    lines: list[str] = []

    def flush() -> None:
        if name is None:
            return
        if not lines or not lines[0].startswith("-- "):
            raise ValueError(f"query {name!r} has no description line")
        description = lines[0][3:].strip()
        sql = "\n".join(lines[1:]).strip()
        if not sql:
            raise ValueError(f"query {name!r} has no statement")
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = Query(name, description, sql)

    for line in text.splitlines():
        if _BANNER.match(line.strip()):
            continue
        header = _HEADER.match(line.strip())
        if header:
            flush()
            name, lines = header.group(1), []
        elif name is not None and (lines or line.strip()):
            lines.append(line)
    flush()
    return queries


@cache
def load_queries() -> dict[str, Query]:
    """The queries shipped with the package, parsed once."""
    text = resources.files("scribe.db").joinpath("queries.sql").read_text(encoding="utf-8")
    return parse_queries(text)


def sql(name: str) -> str:
    """The SQL of the named query (KeyError if there is none)."""
    return load_queries()[name].sql
