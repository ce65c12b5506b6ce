"""What a misbehaving provider can make the service store: a 20 MB model answer is stored as an
email of at most SCRIBE_MAX_EMAIL_CHARS without control characters; search hits with
``javascript:`` URLs are dropped and HTML titles are stored as plain text."""

from __future__ import annotations

import json
from collections.abc import Callable

from scribe.db.pool import Pool
from scribe.settings import Settings
from tests.acceptance.test_end_to_end import _settings, _submit_drain_and_read
from tests.fakes.fixtures import RESEARCH_TEMPLATE
from tests.fakes.services import FakeServices, Scripted

BATCH = {
    "email_template": RESEARCH_TEMPLATE,
    "items": [{"recipient_name": "Prof. Jane Roe", "recipient_interest": "quantum widgets"}],
}


async def test_a_20_mb_model_answer_is_stored_capped_and_without_control_characters(
    make_settings: Callable[..., Settings], fakes: FakeServices, pool: Pool
) -> None:
    huge = "Dear Jane,\x00\x1b[31m\r\n" + "All work and no play. " * 1_000_000  # ~22 MB
    fakes.script(
        "anthropic",
        Scripted(),  # the parser answers normally
        Scripted(body=json.dumps({"email": huge, "is_confident": True})),
    )
    settings = _settings(make_settings, fakes)
    [email] = await _submit_drain_and_read(settings, fakes, pool, BATCH)
    text = email["email_message"]
    assert len(text) <= settings.scribe_max_email_chars == 20_000
    assert text.startswith("Dear Jane,[31m\nAll work")
    assert not any(ord(c) < 32 and c not in "\n\t" for c in text)


async def test_javascript_urls_are_dropped_and_html_titles_stored_as_text(
    make_settings: Callable[..., Settings], fakes: FakeServices, pool: Pool
) -> None:
    fakes.exa_extra = [
        {"id": "js", "url": "javascript:alert(document.cookie)", "title": "x", "text": "t"},
        {"id": "data", "url": "data:text/html,<script>1</script>", "title": "x", "text": "t"},
        {
            "id": "html",
            "url": "https://uni.edu/roe",
            "title": '<img src=x onerror="alert(1)"><b>Jane Roe</b> lab',
            "text": "Jane Roe leads the widget lab. " * 20,
        },
    ]
    settings = _settings(make_settings, fakes)
    [email] = await _submit_drain_and_read(settings, fakes, pool, BATCH)
    metadata = email["metadata"]
    urls = metadata["scraped_urls"]
    citations = metadata["scraping_metadata"]["citations"]
    assert "https://uni.edu/roe" in urls
    assert all(url.startswith(("http://", "https://")) for url in urls)
    assert all(c["url"].startswith(("http://", "https://")) for c in citations)
    title = next(c["title"] for c in citations if c["url"] == "https://uni.edu/roe")
    assert title == "Jane Roe lab"
    assert "<" not in json.dumps(citations)
