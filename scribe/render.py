"""Plain-text rendering of the operator views for ``scribe queue``.

Generic over columns (a view may gain columns without a change here) and never cuts a value:
rows are a table when it fits the terminal (or with ``wide``, always), else one block per row
with a value per line, as ``psql``'s expanded display does.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

NULL = "-"
FALLBACK_COLUMNS = 120  # when the output is not a terminal and COLUMNS is unset


def format_value(value: object) -> str:
    """One cell: intervals as signed seconds (negative = overdue), times in UTC, ids in full."""
    if value is None:
        return NULL
    if isinstance(value, timedelta):
        return format_seconds(value.total_seconds())
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.strftime("%Y-%m-%d %H:%M:%S")
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float | Decimal):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), default=str, sort_keys=True)
    return " ".join(str(value).split())  # one line: newlines and tabs in errors become spaces


def format_seconds(seconds: float) -> str:
    """``-3.0`` → ``-3s``; ``12.25`` → ``12.3s``."""
    text = f"{seconds:.0f}" if float(seconds).is_integer() else f"{seconds:.1f}"
    return f"{text}s"


def render_rows(
    rows: Sequence[Mapping[str, object]], *, wide: bool = False, width: int | None = None
) -> str:
    """The rows as text: a table if ``wide`` or if it fits ``width`` (default: the terminal's
    width), else one block per row. No value is ever truncated."""
    if not rows:
        return "(none)"
    columns = list(rows[0])
    cells = [[format_value(row.get(column)) for column in columns] for row in rows]
    table = _table(columns, cells)
    limit = width if width is not None else shutil.get_terminal_size((FALLBACK_COLUMNS, 24)).columns
    if wide or max(len(line) for line in table) <= limit:
        return "\n".join(table)
    return _expanded(columns, cells)


def _table(columns: list[str], cells: list[list[str]]) -> list[str]:
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in cells
    ]
    return lines


def _expanded(columns: list[str], cells: list[list[str]]) -> str:
    name_width = max(len(c) for c in columns)
    blocks = []
    for number, line in enumerate(cells, start=1):
        block = [f"-[ row {number} ]-"]
        block += [f"{c.ljust(name_width)} | {v}" for c, v in zip(columns, line, strict=True)]
        blocks.append("\n".join(block))
    return "\n".join(blocks)
