"""Output hygiene for model- and web-supplied text: machine tells, control characters, page
titles, URLs.

Every function here runs on user- or model-supplied text (templates up to 10,000 characters,
model answers of any size), on the event loop, so each is linear in its input. The regexes that
stay have no two quantifiers that can match the same characters; each says why it cannot
backtrack. ``tests/unit/test_text_linear.py`` runs the worst cases at each size limit.
"""

from __future__ import annotations

import re

# Each pattern is a fixed word sequence (single spaces, optional fixed letters), so a match
# attempt costs a bounded number of steps per start position. The em dash and the whitespace
# around it are handled without a regex in ``_replace_em_dashes``: ``\s*\u2014\s*`` rescanned a
# whole whitespace run from every position inside it (100k spaces took 16.5 s).
_TELLS = [
    (re.compile(r"\s\u2013\s"), " - "),  # spaced en dash used as a dash
    (re.compile(r"\bdelve(s|d)? into\b", re.IGNORECASE), r"explore\1"),
    (re.compile(r"\bcutting-edge\b", re.IGNORECASE), "recent"),
    (re.compile(r"\bleverag(e|es|ing)\b", re.IGNORECASE), r"us\1"),
    # The trailing \s*+ is possessive and last: it never gives characters back.
    (re.compile(r"I hope this (e-?mail|message) finds you well\.?\s*+", re.IGNORECASE), ""),
]


def _replace_em_dashes(text: str) -> str:
    """Each em dash, with the whitespace on both sides, becomes ``", "`` (one pass)."""
    if "\u2014" not in text:
        return text
    parts = text.split("\u2014")
    last = len(parts) - 1
    cleaned = [part.lstrip() if index else part for index, part in enumerate(parts)]
    cleaned = [part.rstrip() if index < last else part for index, part in enumerate(cleaned)]
    return ", ".join(cleaned)


def remove_machine_tells(text: str) -> str:
    """Replace em dashes and the stock phrases that mark machine-written email."""
    text = _replace_em_dashes(text)
    for pattern, replacement in _TELLS:
        text = pattern.sub(replacement, text)
    return text.replace(" ,", ",")


# C0 controls, DEL and C1 controls, except tab and newline (a carriage return goes too, so CRLF
# answers are stored with plain newlines).
_CONTROL = dict.fromkeys(
    [code for code in [*range(0x20), *range(0x7F, 0xA0)] if chr(code) not in "\n\t"]
)


def bounded_text(text: str, limit: int) -> str:
    """``text`` without control characters (tab and newline kept), cut to ``limit`` characters."""
    return text[: limit * 2].translate(_CONTROL)[:limit]


# A tag is ``<`` + non-angle characters + ``>``: the class excludes both delimiters, so a match
# attempt stops at the next angle bracket and no character is scanned from two starts.
_TAG = re.compile(r"<[^<>]*+>")
_ANGLES = str.maketrans("", "", "<>")


def plain_title(title: str, limit: int) -> str:
    """A page title as plain text: tags removed, stray angle brackets and control characters
    dropped, whitespace collapsed, at most ``limit`` characters."""
    text = _TAG.sub(" ", title[: limit * 4]).translate(_ANGLES)
    return " ".join(bounded_text(text, limit * 4).split())[:limit]


def is_web_url(url: str) -> bool:
    """Whether ``url`` is an absolute http(s) URL (not ``javascript:``, ``data:``, relative …)."""
    scheme, sep, rest = url.partition("://")
    printable = url.isprintable() and " " not in url
    return printable and bool(sep and rest) and scheme.lower() in ("http", "https")
