"""Which research counts for a recipient: only what is about them.

A web page counts when it names them (first name or initial with surname, accents and case
ignored) and is about an academic: it shares a word of their research interest or speaks of
academic work (a university, a lab, research, publications). That tells apart namesakes (a chef
and a physicist called Jane Roe) without dropping a profile that words the interest differently.
An arXiv paper counts when it lists them as an author (checked when the papers are chosen).
"""

from __future__ import annotations

from scribe.domain.names import names_person
from scribe.domain.ranking import terms, wordset

STEM_CHARS = 5  # words compared by their first letters: "widget" and "widgets" agree
ACADEMIC = wordset(  # stems of the words that place a page in academia
    "unive profe lectu facul resea labor lab insti phd depar publi schol colle acade schoo"
)


def _stems(text: str) -> set[str]:
    return {word[:STEM_CHARS] for word in terms(text) if len(word) > 2}


def reason_to_drop(title: str, text: str, name: str, interest: str) -> str | None:
    """Why a page is not about the recipient, or None when it is."""
    page = f"{title} {text}"
    if not names_person(page, name):
        return "does not name the recipient"
    wanted, found = _stems(interest), _stems(page)
    if wanted and not wanted & found and not ACADEMIC & found:
        return "names the recipient but not their field (a namesake?)"
    return None
