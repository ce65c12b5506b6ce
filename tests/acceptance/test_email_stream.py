"""GET /api/email/ streams its JSON array (pages read by keyset, each email sent as it is
rendered) and still answers the exact bytes of the whole list rendered at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from scribe.api.emails import EmailOut
from scribe.db import emails
from scribe.db.emails import EMAIL_PAGE_ROWS
from scribe.db.pool import Pool
from tests.factories import add_email, assert_email_shape, init_user
from tests.queue_support import create_user

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


async def whole_list(pool: Pool, user_id: uuid.UUID, **query: int | bool) -> bytes:
    """The list as it was answered before streaming: one query, rendered at once."""
    rows = await emails.list_for_user(
        pool,
        user_id,
        limit=int(query.get("limit", 20)),
        offset=int(query.get("offset", 0)),
        include_hidden=bool(query.get("include_discarded", False)),
    )
    return b"[" + b",".join(EmailOut.of(row).model_dump_json().encode() for row in rows) + b"]"


async def add_many(pool: Pool, user_id: uuid.UUID) -> None:
    """2.5 pages of emails; 60 share one created_at across the first page boundary (ties are
    broken by id), every seventh is hidden, texts are long and not all ASCII."""
    for n in range(EMAIL_PAGE_ROWS * 5 // 2):
        created = T0 if 20 <= n < 80 else T0 + timedelta(seconds=n)
        await add_email(
            pool,
            user_id,
            created,
            email_message=f'Dear Prof. Müller {n}, ünïcode “quotes” \\ and "escapes"\n' * 50,
            displayed=n % 7 != 0,
        )


async def test_the_streamed_list_is_byte_for_byte_the_whole_list(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    user_id, headers = await init_user(client, "ada@uni.edu")
    await add_many(pool, user_id)
    await add_email(pool, (await init_user(client, "bob@uni.edu"))[0], T0)  # someone else's
    queries: list[dict[str, int | bool]] = [
        {"limit": 1000},
        {"limit": 1000, "include_discarded": True},
        {"limit": 60, "offset": 45},
        {"limit": EMAIL_PAGE_ROWS},
        {"limit": 1},
        {},
    ]
    for query in queries:
        response = await client.get("/api/email/", params=query, headers=headers)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert "content-length" not in response.headers  # sent as it is read
        assert response.content == await whole_list(pool, user_id, **query), query
    every = await client.get("/api/email/?limit=1000&include_discarded=true", headers=headers)
    body = every.json()
    assert len(body) == EMAIL_PAGE_ROWS * 5 // 2
    assert len({item["id"] for item in body}) == len(body)  # no row twice across pages
    for item in body:
        assert_email_shape(item)
        assert item["created_at"].endswith("Z")


async def test_an_empty_or_exhausted_list_is_still_an_array(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    user_id, headers = await init_user(client, "ada@uni.edu")
    empty = await client.get("/api/email/", params={"limit": 1000}, headers=headers)
    assert empty.status_code == 200 and empty.content == b"[]"
    await add_email(pool, user_id, T0)
    past_the_end = await client.get("/api/email/", params={"offset": 5}, headers=headers)
    assert past_the_end.content == b"[]"


async def test_pages_follow_the_order_across_equal_times(pool: Pool) -> None:
    """Keyset pages of 7 over rows that share created_at: every row once, in list order."""
    user_id = await create_user(pool)
    for n in range(30):
        await add_email(pool, user_id, T0 if n % 2 else T0 + timedelta(seconds=n))
    expected = await emails.list_for_user(pool, user_id, limit=25, offset=3, include_hidden=True)
    pages = [
        page
        async for page in emails.pages_for_user(
            pool, user_id, limit=25, offset=3, include_hidden=True, page_rows=7
        )
    ]
    assert [len(page) for page in pages] == [7, 7, 7, 4]
    assert [row.id for page in pages for row in page] == [row.id for row in expected]
