"""What a misbehaving provider can make the service store: a 20 MB model answer fills its
placeholder with at most MAX_VALUE_CHARS on one line, without control characters; search hits with
``javascript:`` URLs are dropped and HTML titles are stored as plain text."""

from __future__ import annotations

import json
from collections.abc import Callable

from scribe.db.pool import Pool
from scribe.settings import Settings
from scribe.steps.composer_brief import MAX_VALUE_CHARS
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
    huge = "widgets,\x00\x1b\r\n" + "all work and no play. " * 1_000_000  # ~22 MB
    fills = [
        {"placeholder": "{{professor_name}}", "value": "Jane Roe", "sources": []},
        {"placeholder": "{{paper_title}}", "value": "your recent work", "sources": []},
        {"placeholder": "{{research_area}}", "value": huge, "sources": []},
    ]
    fakes.script(
        "anthropic",
        Scripted(),  # the parser answers normally
        Scripted(body=json.dumps({"fills": fills})),
    )
    settings = _settings(make_settings, fakes)
    [email] = await _submit_drain_and_read(settings, fakes, pool, BATCH)
    text = email["email_message"]
    assert len(text) <= settings.scribe_max_email_chars == 20_000
    # The value is cut to MAX_VALUE_CHARS on one line; the template's words around it stay.
    start = text.index("my own interest in widgets, all work and no play. all")
    end = text.index(" I would love to ask whether you have room")
    assert end - start - len("my own interest in ") <= MAX_VALUE_CHARS
    assert text.endswith("Best regards,\nAlex")
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
