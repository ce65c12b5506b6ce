"""Recipient names: honorifics and post-nominals removed, and author-name matching.

One rule for every caller: the web search, the arXiv search and the composer all look for the
same name (``"Assoc. Prof. Jane Roe, PhD"`` → ``"Jane Roe"``).
"""

from __future__ import annotations

import re
import unicodedata

# Titles before a name, compared lower-cased without a trailing dot.
TITLES = frozenset(
    {
        "dr",
        "prof",
        "professor",
        "assoc",
        "associate",
        "asst",
        "assistant",
        "mr",
        "mrs",
        "ms",
        "mx",
        "miss",
        "sir",
        "dame",
    }
)
# Degrees after a name, compared lower-cased without dots ("Ph.D." is "phd").
POST_NOMINALS = frozenset({"phd", "dphil", "md", "msc", "mba", "frs"})

# Linear: one character-class run, stopped by the first character outside it.
_WORD = re.compile(r"[a-z0-9]+")


def plain_name(name: str) -> str:
    """``name`` without leading titles or trailing degrees, whitespace collapsed; the name as
    given when nothing else is left (``"Dr."`` stays ``"Dr."``)."""
    words = name.replace(",", " ").split()
    start, end = 0, len(words)
    while start < end and words[start].lower().rstrip(".") in TITLES:
        start += 1
    while end > start and words[end - 1].lower().replace(".", "") in POST_NOMINALS:
        end -= 1
    return " ".join(words[start:end]) or " ".join(name.split())


def fold(text: str) -> str:
    """``text`` lower-cased with accents removed (``"Ñúñez"`` → ``"nunez"``)."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def same_author(wanted: str, candidate: str) -> bool:
    """Same surname and compatible first name (full or initial), accents and case ignored."""
    want, have = _WORD.findall(fold(wanted)), _WORD.findall(fold(candidate))
    if not want or not have or want[-1] != have[-1]:
        return False
    if len(want) == 1 or len(have) == 1:
        return True
    return want[0][0] == have[0][0] and (
        len(want[0]) == 1 or len(have[0]) == 1 or want[0] == have[0]
    )


# How many words before a surname may hold the first name ("Jane Q. Roe", "J. Roe").
_FIRST_NAME_REACH = 2


def names_person(text: str, name: str) -> bool:
    """Whether ``text`` names the person ``name`` (honorifics ignored): their surname preceded,
    within two words, by a compatible first name or initial, accents and case ignored; for a
    one-word name, that word. Linear in ``text``."""
    wanted = _WORD.findall(fold(plain_name(name)))
    if not wanted:
        return False
    words = _WORD.findall(fold(text))
    surname = wanted[-1]
    for index, word in enumerate(words):
        if word != surname:
            continue
        if len(wanted) == 1:
            return True
        before = words[max(0, index - _FIRST_NAME_REACH) : index]
        if any(same_author(f"{wanted[0]} {surname}", f"{first} {surname}") for first in before):
            return True
    return False
