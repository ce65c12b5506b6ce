"""Exa's /search over httpx: the request Exa documents, the hits read from its answer, and an
answer without results refused."""

from __future__ import annotations

import json

import httpx
import pytest

from scribe.clients.search import ExaSearch, SearchHit
from scribe.errors import UpstreamRejected


def exa_answering(answer: httpx.Response, seen: list[httpx.Request]) -> ExaSearch:
    search = ExaSearch("exa-key", "https://exa.test")

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer

    search._http = httpx.AsyncClient(
        base_url="https://exa.test",
        headers=search._http.headers,
        transport=httpx.MockTransport(handler),
    )
    return search


async def test_a_search_posts_the_query_and_reads_the_hits() -> None:
    seen: list[httpx.Request] = []
    answer = {
        "results": [
            {
                "url": "https://uni.example/roe",
                "title": "Roe",
                "text": " Text ",
                "publishedDate": "2024",
            },
            {"title": "no url"},
            "not an object",
        ]
    }
    search = exa_answering(httpx.Response(200, json=answer), seen)
    hits = await search.search("Jane Roe", num_results=3, max_characters=100, system_prompt="sp")
    await search.aclose()
    assert hits == [SearchHit("https://uni.example/roe", "Roe", "Text", "2024")]
    request = seen[0]
    assert request.url == "https://exa.test/search" and request.headers["x-api-key"] == "exa-key"
    assert json.loads(request.content) == {
        "query": "Jane Roe",
        "numResults": 3,
        "contents": {"text": {"maxCharacters": 100}},
        "systemPrompt": "sp",
    }


@pytest.mark.parametrize("body", [b"not json", b'{"answer": 1}', b'{"results": {}}'])
async def test_an_answer_without_a_list_of_results_is_rejected(body: bytes) -> None:
    search = exa_answering(httpx.Response(200, content=body), [])
    with pytest.raises(UpstreamRejected, match="without a list of results"):
        await search.search("Jane Roe")
    await search.aclose()
