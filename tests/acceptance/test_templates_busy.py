"""POST /api/templates/ while a hostile resume holds the PDF parse slot: a normal request is
refused at once with Retry-After instead of waiting behind it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import psutil

from scribe.settings import Settings
from tests.acceptance.test_templates_generate import INSTRUCTIONS, app_client, generate, pdf
from tests.conftest import auth_headers
from tests.fakes.services import FakeServices
from tests.queue_support import wait_until

OTHER = auth_headers("other@uni.edu")


async def parse_running() -> bool:
    """Whether a PDF parse child of this process (the app is served in it) is running."""
    return any(
        any("pdf_child.py" in part for part in child.cmdline())
        for child in psutil.Process().children()
    )


async def test_a_normal_resume_is_refused_at_once_while_a_hostile_one_holds_the_slot(
    make_settings: Callable[..., Settings], fakes: FakeServices
) -> None:
    options = {"scribe_pdf_wait_seconds": 0, "scribe_pdf_cpu_seconds": 30}
    async with app_client(make_settings, fakes, **options) as client:
        assert (await client.post("/api/user/init", json={}, headers=OTHER)).status_code == 201
        hostile = asyncio.create_task(generate(client, pdf(fakes, "hostile-10.pdf")))
        try:
            await wait_until(parse_running, timeout=30, message="the hostile parse")
            body = {"pdf_url": pdf(fakes, "resume.pdf"), "user_instructions": INSTRUCTIONS}
            refused = await client.post("/api/templates/", json=body, headers=OTHER)
            assert refused.status_code == 429, refused.text
            assert list(refused.json()) == ["detail"]
            assert "busy reading other resumes" in refused.json()["detail"]
            assert 1 <= int(refused.headers["Retry-After"]) <= 30 * 3 + 10
            again = await generate(client, pdf(fakes, "resume.pdf"))  # the hostile user
            assert again.status_code == 409  # one generation (and parse) per user at a time
        finally:
            hostile.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hostile
    assert fakes.of("anthropic") == []
