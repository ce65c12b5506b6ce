"""Template placeholders: found verbatim, reported when left in a text, filled by a rule.

Every function here runs on user- or model-supplied text (templates up to 10,000 characters,
model answers of any size), on the event loop, so each is linear in its input.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

# A placeholder is ``{{`` + at least one non-brace character + ``}}``. This is the same language
# as the earlier ``\{\{\s*[^{}]+?\s*\}\}`` (``\s`` is a non-brace character), whose three
# overlapping quantifiers made ``"{{" + " " * 5000`` take 80 s. Here one possessive class run
# cannot backtrack at all, and it stops at the first brace, so each ``{{`` costs at most the
# distance to the next brace: linear overall.
PLACEHOLDER = re.compile(r"\{\{[^{}]++\}\}")


def placeholders_in(template: str) -> list[str]:
    """Every ``{{placeholder}}`` of a template, verbatim, in order, without duplicates."""
    return list(dict.fromkeys(match.group(0) for match in PLACEHOLDER.finditer(template)))


def unfilled(text: str, known: Sequence[str]) -> list[str]:
    """The placeholders that survive in ``text``: the ``known`` ones (any syntax, e.g.
    ``[Research Area]``) and any ``{{placeholder}}``."""
    left = [p for p in known if p in text]
    return left + [m.group(0) for m in PLACEHOLDER.finditer(text) if m.group(0) not in left]


def fill(text: str, known: Sequence[str], value_for: Callable[[str], str]) -> str:
    """``text`` with every known placeholder and every ``{{placeholder}}`` replaced by
    ``value_for(placeholder)``."""
    for placeholder in known:
        text = text.replace(placeholder, value_for(placeholder))
    return PLACEHOLDER.sub(lambda m: value_for(m.group(0)), text)
