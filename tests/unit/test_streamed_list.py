"""A streamed JSON list: the bytes of the whole list, and a failure after the first page ends
the body before its closing bracket (never a shorter list that parses as whole)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Sequence

import pytest
from pydantic import BaseModel
from starlette.responses import StreamingResponse

from scribe.api.common import streamed_json_list
from scribe.errors import DatabaseUnavailable


class Row(BaseModel):
    n: int
    text: str


def render(n: int) -> Row:
    return Row(n=n, text=f'ü{n}"')


async def pages(
    *chunks: Sequence[int], fail_after: int | None = None
) -> AsyncGenerator[Sequence[int], None]:
    for index, chunk in enumerate(chunks):
        if index == fail_after:
            raise DatabaseUnavailable("database unavailable: ConnectionResetError")
        yield chunk


async def body(response: object) -> bytes:
    assert isinstance(response, StreamingResponse)
    parts = [part async for part in response.body_iterator]
    assert all(isinstance(part, bytes) for part in parts)
    return b"".join(bytes(part) for part in parts if isinstance(part, bytes))


async def test_the_stream_is_the_whole_list_rendered_at_once() -> None:
    whole = b"[" + b",".join(render(n).model_dump_json().encode() for n in range(5)) + b"]"
    assert await body(await streamed_json_list(pages([0, 1], [2, 3], [4]), render)) == whole
    assert json.loads(whole)[4] == {"n": 4, "text": 'ü4"'}
    assert await body(await streamed_json_list(pages(), render)) == b"[]"
    assert await body(await streamed_json_list(pages([]), render)) == b"[]"


async def test_a_database_failure_before_the_answer_is_raised() -> None:
    with pytest.raises(DatabaseUnavailable):
        await streamed_json_list(pages([0], fail_after=0), render)


async def test_a_database_failure_mid_stream_leaves_invalid_json_and_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    response = await streamed_json_list(pages([0, 1], [2], fail_after=1), render)
    with caplog.at_level(logging.WARNING):
        cut = await body(response)
    assert (
        cut
        == b"[" + render(0).model_dump_json().encode() + b"," + render(1).model_dump_json().encode()
    )
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut)
    assert [r.getMessage() for r in caplog.records] == [
        "list answer cut short after its first page: database unavailable: ConnectionResetError"
    ]
