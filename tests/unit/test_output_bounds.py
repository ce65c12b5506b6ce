"""What the pipeline may store: control characters, size, URL schemes, titles, list lengths."""

from __future__ import annotations

from scribe.clients.search import SearchHit
from scribe.domain.text import bounded_text, is_web_url, plain_title
from scribe.steps.web_scraper import MAX_HITS_PER_QUERY, MAX_TITLE_CHARS, _stored_hits


def test_bounded_text_drops_control_characters_but_keeps_newlines_and_tabs() -> None:
    assert bounded_text("a\x00b\r\nc\td\x1b[0m\x7f\x85e", 100) == "ab\nc\td[0me"


def test_bounded_text_cuts_to_the_limit_after_dropping_controls() -> None:
    assert bounded_text("\x00" * 10 + "x" * 50, 20) == "x" * 20
    assert len(bounded_text("y" * 20_000_000, 20_000)) == 20_000


def test_only_absolute_http_urls_are_web_urls() -> None:
    assert is_web_url("https://uni.edu/~roe") and is_web_url("HTTP://uni.edu")
    for url in (
        "javascript:alert(1)",
        "JavaScript://%0aalert(1)",
        "data:text/html,<script>x</script>",
        "//uni.edu/x",
        "/relative",
        "https://",
        " https://uni.edu",
        "https://uni.edu/\nx",
        "ftp://uni.edu/file",
    ):
        assert not is_web_url(url), url


def test_titles_are_plain_text() -> None:
    assert plain_title("<b>Jane</b> <script>alert(1)</script>Roe", 100) == "Jane alert(1) Roe"
    assert plain_title("<img src=x onerror=alert(1)", 100) == "img src=x onerror=alert(1)"
    assert plain_title("a\x00\n  b" + "c" * 1000, 10) == "a bccccccc"


def test_stored_hits_are_web_urls_with_plain_titles_and_capped() -> None:
    hits = [SearchHit("javascript:alert(1)", "x", "t")] + [
        SearchHit(f"https://uni.edu/{n}", f"<i>T{n}</i>" + "t" * 500, "t") for n in range(50)
    ]
    stored = _stored_hits(hits)
    assert len(stored) == MAX_HITS_PER_QUERY
    assert all(hit.url.startswith("https://") for hit in stored)
    assert stored[0].title.startswith("T0 t") and len(stored[0].title) == MAX_TITLE_CHARS
