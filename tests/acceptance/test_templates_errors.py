"""POST /api/templates/ failures answer a short user-facing ``detail`` (the template page shows it
verbatim): no provider text, no pydantic dump, no addresses."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from scribe.api.template_generation import MODEL_BUSY, MODEL_FAILED
from scribe.settings import Settings
from tests.acceptance.test_templates_generate import app_client, generate, pdf, template_count
from tests.fakes.services import FakeServices, Scripted

INTERNALS = ("529", "scripted", "overloaded", "HTTP", "validation", "pydantic", "words", "{")


def assert_user_facing(detail: str) -> None:
    assert detail.startswith("Template generation failed: ")
    assert not [word for word in INTERNALS if word in detail], detail


async def test_overloaded_model_answers_503_the_model_is_busy(
    make_settings: Callable[..., Settings], fakes: FakeServices
) -> None:
    fakes.script("anthropic", Scripted(status=529))
    async with app_client(make_settings, fakes) as client:
        response = await generate(client, pdf(fakes, "resume.pdf"))
        assert response.status_code == 503
        assert response.json() == {"detail": MODEL_BUSY}
        assert int(response.headers["Retry-After"]) >= 1
        assert await template_count(client) == 0


@pytest.mark.parametrize(
    "answer",
    ["this is not json", '{"template": "Dear {{name}}, hello."}'],  # unparseable; too short
    ids=["malformed", "out-of-range"],
)
async def test_unusable_model_answer_answers_502_without_validation_text(
    make_settings: Callable[..., Settings], fakes: FakeServices, answer: str
) -> None:
    fakes.script("anthropic", Scripted(body=answer), Scripted(body=answer))
    async with app_client(make_settings, fakes) as client:
        response = await generate(client, pdf(fakes, "resume.pdf"))
        assert response.status_code == 502
        assert response.json() == {"detail": MODEL_FAILED}
        assert_user_facing(response.json()["detail"])
        assert await template_count(client) == 0


@pytest.mark.parametrize(
    ("name", "expected"),
    [("scanned.pdf", "could not read the PDF"), ("not-a-pdf.pdf", "could not read the PDF")],
)
async def test_unreadable_pdf_answers_400_could_not_read_the_pdf(
    make_settings: Callable[..., Settings], fakes: FakeServices, name: str, expected: str
) -> None:
    async with app_client(make_settings, fakes) as client:
        response = await generate(client, pdf(fakes, name))
    assert response.status_code == 400
    assert expected in response.json()["detail"]
    assert_user_facing(response.json()["detail"])


async def test_refused_address_does_not_echo_the_host_or_address(
    make_settings: Callable[..., Settings], fakes: FakeServices
) -> None:
    async with app_client(make_settings, fakes, pdf_allowed_hosts="intranet.test") as client:
        response = await generate(client, "http://intranet.test/resume.pdf")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert_user_facing(detail)
    assert "intranet.test" not in detail and "10.1.2.3" not in detail


async def test_rejected_key_answers_503_and_health_says_degraded(
    make_settings: Callable[..., Settings], fakes: FakeServices
) -> None:
    fakes.script("anthropic", Scripted(status=401))
    async with app_client(make_settings, fakes) as client:
        response = await generate(client, pdf(fakes, "resume.pdf"))
        assert response.status_code == 503
        assert response.json() == {"detail": MODEL_BUSY}
        again = await generate(client, pdf(fakes, "resume.pdf"))  # paused: no second call
        assert again.status_code == 503
        health = (await client.get("/health")).json()
        assert health["status"].startswith("degraded: anthropic:claude-sonnet paused since ")
        assert health["status"].endswith(": HTTP 401")
        assert list(health["providers"]) == ["anthropic:claude-sonnet"]
        metrics = (await client.get("/metrics")).text
        assert 'scribe_provider_paused{account="anthropic:claude-sonnet"} 1.0' in metrics
    assert len(fakes.of("anthropic")) == 1
