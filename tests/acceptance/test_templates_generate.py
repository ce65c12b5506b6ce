"""POST /api/templates/ over HTTP: resume PDF (fake host) -> generator model (fake) -> stored."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from scribe.app import create_app
from scribe.settings import Settings
from tests.conftest import auth_headers
from tests.fakes.fixtures import fake_policy, fake_settings
from tests.fakes.server import serve_asgi
from tests.fakes.services import FakeServices

HEADERS = auth_headers("student@uni.edu")
INSTRUCTIONS = "Keep it short and mention my robotics work."


@contextlib.asynccontextmanager
async def app_client(
    make_settings: Callable[..., Settings], fakes: FakeServices, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The app (with the test SSRF hook for the fakes) and an initialised user."""
    provider = fake_settings(fakes, **overrides).model_dump(exclude_unset=True)
    settings = make_settings(**{**provider, **overrides})
    app = create_app(settings, address_policy=fake_policy(fakes.port))
    async with (
        serve_asgi(app, settings) as (url, _port),
        httpx.AsyncClient(base_url=url, timeout=30) as c,
    ):
        init = await c.post("/api/user/init", json={}, headers=HEADERS)
        assert init.status_code in (200, 201)
        yield c


def pdf(fakes: FakeServices, name: str) -> str:
    return f"http://public.test:{fakes.port}/pdf/{name}"


async def generate(
    client: httpx.AsyncClient, url: str, instructions: str = INSTRUCTIONS
) -> httpx.Response:
    body = {"pdf_url": url, "user_instructions": instructions}
    return await client.post("/api/templates/", json=body, headers=HEADERS)


async def template_count(client: httpx.AsyncClient) -> int:
    count: int = (await client.get("/api/user/profile", headers=HEADERS)).json()["template_count"]
    return count


async def test_generates_and_stores_a_template(
    make_settings: Callable[..., Settings], fakes: FakeServices
) -> None:
    async with app_client(make_settings, fakes) as client:
        response = await generate(client, pdf(fakes, "resume.pdf"))
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == {
            "id",
            "user_id",
            "pdf_url",
            "template_text",
            "user_instructions",
            "created_at",
        }
        assert "{{professor_name}}" in body["template_text"]
        assert 150 <= len(body["template_text"].split()) <= 250
        assert "\u2014" not in body["template_text"]
        listed = (await client.get("/api/templates/", headers=HEADERS)).json()
        assert [t["id"] for t in listed] == [body["id"]]
        assert await template_count(client) == 1
    prompt = fakes.of("anthropic")[-1].body["messages"][0]["content"]
    assert "SLAM pipeline" in prompt and INSTRUCTIONS in prompt


async def test_offline_generation_without_a_key(
    make_settings: Callable[..., Settings], fakes: FakeServices
) -> None:
    async with app_client(make_settings, fakes, anthropic_api_key=None) as client:
        response = await generate(client, pdf(fakes, "resume.pdf"))
    assert response.status_code == 201, response.text
    text = response.json()["template_text"]
    assert "Alex Student" in text and "{{professor_name}}" in text
    assert 150 <= len(text.split()) <= 250


async def test_limit_race_lets_exactly_one_of_two_through(
    make_settings: Callable[..., Settings], fakes: FakeServices
) -> None:
    async with app_client(make_settings, fakes) as client:
        for _ in range(4):
            assert (await generate(client, pdf(fakes, "resume.pdf"))).status_code == 201
        fakes.latency["anthropic"] = 0.3  # both requests pass the pre-check before either stores
        first, second = await asyncio.gather(
            generate(client, pdf(fakes, "resume.pdf")), generate(client, pdf(fakes, "resume.pdf"))
        )
        # The second is refused as "already in flight" (one generation per user at a time);
        # the store itself stays atomic (test_template_limit_is_exact_under_concurrent_stores).
        assert sorted([first.status_code, second.status_code]) == [201, 409]
        refused = first if first.status_code == 409 else second
        assert "already being generated" in refused.json()["detail"]
        assert await template_count(client) == 5
        again = await generate(client, pdf(fakes, "resume.pdf"))
        assert again.status_code == 429 and "Retry-After" in again.headers
        assert len((await client.get("/api/templates/", headers=HEADERS)).json()) == 5
    assert len(fakes.of("anthropic")) == 5  # the refused requests cost no model call


async def test_bad_pdfs_are_400_and_use_no_quota(
    make_settings: Callable[..., Settings], fakes: FakeServices
) -> None:
    async with app_client(make_settings, fakes) as client:
        scanned = await generate(client, pdf(fakes, "scanned.pdf"))
        assert scanned.status_code == 400 and "scanned" in scanned.json()["detail"]
        not_pdf = await generate(client, pdf(fakes, "not-a-pdf.pdf"))
        assert not_pdf.status_code == 400
        huge = await generate(client, pdf(fakes, "huge.pdf"))
        assert huge.status_code == 400 and "larger than" in huge.json()["detail"]
        assert await template_count(client) == 0
    assert fakes.of("anthropic") == []


async def test_disallowed_and_private_hosts_are_refused(
    make_settings: Callable[..., Settings], fakes: FakeServices
) -> None:
    async with app_client(make_settings, fakes) as client:
        other = await generate(client, f"http://127.0.0.1:{fakes.port}/pdf/resume.pdf")
        assert other.status_code == 400 and "not allowed" in other.json()["detail"]
    async with app_client(make_settings, fakes, pdf_allowed_hosts="intranet.test") as client:
        private = await generate(client, "http://intranet.test/resume.pdf")
        assert private.status_code == 400 and "non-public" in private.json()["detail"]
        assert await template_count(client) == 0


async def test_short_instructions_are_422(
    make_settings: Callable[..., Settings], fakes: FakeServices
) -> None:
    async with app_client(make_settings, fakes) as client:
        response = await client.post(
            "/api/templates/",
            json={"pdf_url": pdf(fakes, "resume.pdf"), "user_instructions": "short"},
            headers=HEADERS,
        )
    assert response.status_code == 422


async def test_pdf_url_httpx_cannot_parse_is_400_not_500(
    make_settings: Callable[..., Settings], fakes: FakeServices
) -> None:
    # urlsplit drops the tab (so the host check passes); httpx refuses the URL outright.
    async with app_client(make_settings, fakes) as client:
        response = await generate(client, f"http://public.test\t:{fakes.port}/pdf/resume.pdf")
        assert response.status_code == 400, response.text
        assert await template_count(client) == 0


async def test_hostile_pdf_is_422_within_its_cpu_limit_and_uses_no_template_slot(
    make_settings: Callable[..., Settings], fakes: FakeServices
) -> None:
    async with app_client(make_settings, fakes, scribe_pdf_cpu_seconds=1) as client:
        response = await generate(client, pdf(fakes, "hostile-10.pdf"))
        assert response.status_code == 422, response.text
        assert "too expensive to read" in response.json()["detail"]
        assert "CPU" in response.json()["detail"]
        assert await template_count(client) == 0
        # The attempt is closed: the next request is not refused as "in flight".
        assert (await generate(client, pdf(fakes, "resume.pdf"))).status_code == 201
    assert len(fakes.of("anthropic")) == 1


async def test_failed_attempts_count_toward_the_daily_attempt_limit(
    make_settings: Callable[..., Settings], fakes: FakeServices
) -> None:
    async with app_client(make_settings, fakes, scribe_template_attempts_per_day=2) as client:
        for instructions in (INSTRUCTIONS, "A different request, failing the same way."):
            failed = await generate(client, pdf(fakes, "scanned.pdf"), instructions)
            assert failed.status_code == 400
        refused = await generate(client, pdf(fakes, "resume.pdf"))
        # 409, not 429: the page shows its own "Template limit reached (5 maximum)." for any 429
        assert refused.status_code == 409
        assert "Daily limit on template generation" in refused.json()["detail"]
        assert int(refused.headers["Retry-After"]) >= 1
        assert await template_count(client) == 0
    assert fakes.of("anthropic") == []
    assert len(fakes.of("pdf")) == 2  # the refused attempt downloaded nothing


async def test_a_failed_request_sent_again_at_once_uses_one_attempt(
    make_settings: Callable[..., Settings], fakes: FakeServices
) -> None:
    # The frontend re-sends a failed request once by itself, about a second later.
    async with app_client(make_settings, fakes, scribe_template_attempts_per_day=2) as client:
        for _ in range(2):
            assert (await generate(client, pdf(fakes, "scanned.pdf"))).status_code == 400
        stored = await generate(client, pdf(fakes, "resume.pdf"))
        assert stored.status_code == 201, stored.text
        refused = await generate(client, pdf(fakes, "resume.pdf"), "Yet another request here.")
        assert refused.status_code == 409


async def test_pdf_url_with_brackets_is_400_not_500(
    make_settings: Callable[..., Settings], fakes: FakeServices
) -> None:
    # urlsplit raises ValueError on these malformed IPv6 literals.
    async with app_client(make_settings, fakes) as client:
        for url in ("http://[::1/x.pdf", "https://[127.0.0.1]/x", "https://[::1"):
            response = await generate(client, url)
            assert response.status_code == 400, (url, response.text)
            assert "detail" in response.json()
        assert await template_count(client) == 0


async def test_without_a_pdf_host_the_start_warns_once_and_generation_says_why(
    make_settings: Callable[..., Settings],
    fakes: FakeServices,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="scribe.app"):
        async with app_client(make_settings, fakes, pdf_allowed_hosts=[]) as client:
            response = await generate(client, pdf(fakes, "resume.pdf"))
    warnings = [r.getMessage() for r in caplog.records if "PDF_ALLOWED_HOSTS" in r.getMessage()]
    assert len(warnings) == 1 and "POST /api/templates/" in warnings[0]
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Template generation failed: the PDF's address is not allowed."
    }
