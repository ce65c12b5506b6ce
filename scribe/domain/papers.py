"""Which of an author's papers an email may cite: their own, recent, relevant ones first."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from scribe.domain.names import same_author

PAPER_YEARS = 10  # papers older than this are never chosen
MAX_PAPERS = 5
_WORD = re.compile(r"[a-z0-9]+")  # linear: one class run
_STOPWORDS = {"and", "of", "the", "in", "for", "on", "to", "a", "an", "with", "at", "by"}


class Paper(BaseModel):
    """An arXiv paper."""

    title: str
    arxiv_url: str
    year: int
    abstract: str = ""
    authors: list[str] = Field(default_factory=list)


def relevance(interest: str, paper: Paper) -> int:
    """How many words of the interest occur in the title and abstract."""
    words = {w for w in _WORD.findall(interest.lower()) if w not in _STOPWORDS and len(w) > 2}
    haystack = set(_WORD.findall(f"{paper.title} {paper.abstract}".lower()))
    return len(words & haystack)


def own_recent(name: str, papers: list[Paper], *, years: int = PAPER_YEARS) -> list[Paper]:
    """The papers of the last ``years`` years that ``name`` is an author of."""
    oldest = datetime.now(UTC).year - years
    return [p for p in papers if p.year >= oldest and any(same_author(name, a) for a in p.authors)]


def select_papers(
    name: str,
    interest: str,
    papers: list[Paper],
    *,
    limit: int = MAX_PAPERS,
    years: int = PAPER_YEARS,
) -> list[Paper]:
    """The recipient's own papers of the last ``years`` years, relevant ones first, newest first
    within each group, at most ``limit``."""
    own = own_recent(name, papers, years=years)
    own.sort(
        key=lambda p: (relevance(interest, p) > 0, p.year, relevance(interest, p)), reverse=True
    )
    return own[:limit]
