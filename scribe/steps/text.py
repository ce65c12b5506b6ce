"""Text helpers the steps share: placeholders, name cleanup, machine tells."""

from __future__ import annotations

import re

PLACEHOLDER = re.compile(r"\{\{\s*[^{}]+?\s*\}\}")
_HONORIFIC = re.compile(r"^(?:(?:dr|prof|professor|mr|mrs|ms|mx|sir|dame)\.?\s+)+", re.IGNORECASE)
_TELLS = [
    (re.compile(r"\s*\u2014\s*"), ", "),  # em dash
    (re.compile(r"\s\u2013\s"), " - "),  # spaced en dash used as a dash
    (re.compile(r"\bdelve(s|d)? into\b", re.IGNORECASE), r"explore\1"),
    (re.compile(r"\bcutting-edge\b", re.IGNORECASE), "recent"),
    (re.compile(r"\bleverag(e|es|ing)\b", re.IGNORECASE), r"us\1"),
    (re.compile(r"I hope this (e-?mail|message) finds you well\.?\s*", re.IGNORECASE), ""),
]


def placeholders_in(template: str) -> list[str]:
    """Every ``{{placeholder}}`` of a template, verbatim, in order, without duplicates."""
    found: list[str] = []
    for match in PLACEHOLDER.finditer(template):
        if match.group(0) not in found:
            found.append(match.group(0))
    return found


def plain_name(name: str) -> str:
    """A recipient name without leading honorifics (``Prof. Jane Roe`` → ``Jane Roe``)."""
    return _HONORIFIC.sub("", name.strip()).strip() or name.strip()


def remove_machine_tells(text: str) -> str:
    """Replace em dashes and the stock phrases that mark machine-written email."""
    for pattern, replacement in _TELLS:
        text = pattern.sub(replacement, text)
    return text.replace(" ,", ",")
