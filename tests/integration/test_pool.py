"""The asyncpg pool in both modes, against real Postgres."""

from __future__ import annotations

import uuid

import pytest

from scribe.db import users
from scribe.db.pool import create_pool

_PREPARED = "SELECT count(*) FROM pg_prepared_statements"


@pytest.mark.parametrize("transaction_pooler", [True, False])
async def test_named_prepared_statements_only_outside_pooler_mode(
    database_url: str, transaction_pooler: bool
) -> None:
    """Behind a transaction pooler a named statement would land on another backend."""
    pool = await create_pool(database_url, size=1, transaction_pooler=transaction_pooler)
    try:
        for _ in range(3):
            assert await users.get(pool, uuid.uuid4()) is None
        # A pool of one: this is the connection that ran the queries above.
        count = await pool.fetchval(_PREPARED)
        if transaction_pooler:
            assert count == 0
        else:
            assert count > 0
    finally:
        await pool.close()


async def test_jsonb_round_trips_as_python_objects(database_url: str) -> None:
    pool = await create_pool(database_url, size=1, transaction_pooler=True)
    try:
        value = await pool.fetchval("SELECT $1::jsonb", {"a": [1, "b", None]})
        assert value == {"a": [1, "b", None]}
    finally:
        await pool.close()
