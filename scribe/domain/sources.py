"""Which research counts for a recipient: only what is about them.

A web page counts when it names them (first name or initial with surname, accents and case
ignored) and shares a word of their research interest: the interest tells apart namesakes (a
chef and a physicist called Jane Roe). An arXiv paper counts when it lists them as an author
(checked when the papers are chosen).
"""

from __future__ import annotations

from scribe.domain.names import names_person
from scribe.domain.ranking import terms

STEM_CHARS = 5  # words compared by their first letters: "widget" and "widgets" agree


def _stems(text: str) -> set[str]:
    return {word[:STEM_CHARS] for word in terms(text) if len(word) > 2}


def reason_to_drop(title: str, text: str, name: str, interest: str) -> str | None:
    """Why a page is not about the recipient, or None when it is."""
    page = f"{title} {text}"
    if not names_person(page, name):
        return "does not name the recipient"
    wanted = _stems(interest)
    if wanted and not wanted & _stems(page):
        return "names the recipient but not their field (a namesake?)"
    return None
