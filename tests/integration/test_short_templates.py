"""Short templates (the earlier backend's 10-character minimum) go through all four steps, with
the fake models and with the offline provider."""

from __future__ import annotations

import pytest

from scribe.steps.pipeline import build_pipeline, email_result
from tests.fakes.fixtures import fake_clients, fake_settings, item, run_pipeline
from tests.fakes.services import FakeServices

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
    email = email_result(data)
    assert email is not None and "{{" not in email.message
    assert email.template_type in ("research", "book", "general")
    terms = data.parsed().search_terms
    assert terms and all("Jane Roe" in term for term in terms)
    if offline:
        assert email.metadata["model"] == "offline" and email.is_confident is False
