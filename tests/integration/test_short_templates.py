"""Short templates (the earlier backend's 10-character minimum) go through all four steps, with
the fake models and with the offline provider."""

from __future__ import annotations

import pytest

from scribe.steps.pipeline import build_pipeline
from tests.fakes.fixtures import fake_clients, fake_settings, item
from tests.fakes.services import FakeServices
from tests.pipeline_support import run_pipeline

SHORT_TEMPLATES = [
    "Hi {{name}}",
    "Dear {{professor_name}}, can we talk?",
    "Hello there!",
    "I hope this email finds you well.",  # nothing left once stock phrases are removed
]


@pytest.mark.parametrize("template", SHORT_TEMPLATES)
@pytest.mark.parametrize("offline", [True, False], ids=["offline", "models"])
async def test_short_template_produces_an_email(
    fakes: FakeServices, template: str, offline: bool
) -> None:
    keys = {"anthropic_api_key": None, "exa_api_key": None} if offline else {}
    async with fake_clients(fake_settings(fakes, **keys), fakes) as clients:
        data = await run_pipeline(build_pipeline(clients), item(template))
    assert data.email_message and "{{" not in data.email_message
    assert data.template_type in ("research", "book", "general")
    assert data.search_terms and all("Jane Roe" in term for term in data.search_terms)
    if offline:
        assert data.model == "offline" and data.is_confident is False
