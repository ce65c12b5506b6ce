"""The grounding verifier: every claim of every filled value held against the research.

A value's claims (``scribe.domain.claims``) are looked up in the sources it cites, else in any
kept source, else in what the student gave (the recipient's name, their interest, the template):
normalised for case, punctuation, whitespace and diacritics, as whole words. A title must be
one of the recipient's papers (close word overlap with a paper's title, or verbatim in a source
that lists only their works). A URL, email address or instruction must already be in the
template (an arXiv link of one of their papers excepted). What fails is returned with the
placeholder, the text and why.

Pure and linear: each text is cut once into word n-grams (at most ``MAX_NGRAM`` words), and a
claim is looked up by its n-grams, so the cost is the size of the sources plus the size of the
values, never their product.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from scribe.domain.claims import Claim, extract, title_parts
from scribe.domain.names import fold
from scribe.domain.ranking import wordset

MAX_NGRAM = 6  # a longer claim is found when all its 6-word windows are in one text
KEYWORD_STEM = 5  # award and position words are compared by their first letters
TITLE_OVERLAP = 0.8  # shared words / words of the longer title, for a title to match a paper
_WORD = re.compile(r"[a-z0-9]+")  # linear: one class run
_TITLE_STOPWORDS = wordset("a an and at by for in of on the to with")


@dataclass(frozen=True, slots=True)
class Evidence:
    """A kept source as the verifier reads it. ``works``: every title in it is one of the
    recipient's own works (their arXiv paper, or a search asked for their works only)."""

    id: str
    title: str
    text: str
    url: str = ""
    paper: bool = False
    works: bool = False


@dataclass(frozen=True, slots=True)
class Filled:
    """A value the composer gave a placeholder, and the source ids it cited."""

    placeholder: str
    value: str
    cited: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A claim no source supports: where, what and why."""

    placeholder: str
    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """Which placeholders are supported, and the claims that are not."""

    supported: dict[str, bool] = field(default_factory=dict)
    unsupported: list[Unsupported] = field(default_factory=list)


def words(text: str) -> list[str]:
    """``text`` folded (case, diacritics) into its words, punctuation and whitespace dropped."""
    return _WORD.findall(fold(text))


def ngrams(text: str) -> frozenset[str]:
    """Every run of 1 to ``MAX_NGRAM`` words of ``text``, normalised, joined by spaces."""
    found = words(text)
    return frozenset(
        " ".join(found[start : start + size])
        for start in range(len(found))
        for size in range(1, MAX_NGRAM + 1)
        if start + size <= len(found)
    )


def _held(claim: Sequence[str], grams: frozenset[str]) -> bool:
    if not claim:
        return True
    if len(claim) <= MAX_NGRAM:
        return " ".join(claim) in grams
    windows = range(len(claim) - MAX_NGRAM + 1)
    return all(" ".join(claim[i : i + MAX_NGRAM]) in grams for i in windows)


def title_matches(claim: str, title: str) -> bool:
    """Whether two titles share at least ``TITLE_OVERLAP`` of the longer one's words
    (stopwords and numbers aside: a year after a title is checked as a number)."""
    mine = {w for w in words(claim) if w not in _TITLE_STOPWORDS and not w.isdigit()}
    theirs = {w for w in words(title) if w not in _TITLE_STOPWORDS and not w.isdigit()}
    if not mine or not theirs:
        return False
    return len(mine & theirs) / max(len(mine), len(theirs)) >= TITLE_OVERLAP


class Verifier:
    """The research of one email, indexed once; ``verify`` checks any number of values."""

    def __init__(self, sources: Sequence[Evidence], given: Iterable[str], template: str) -> None:
        self._sources = list(sources)
        self._grams = {s.id: ngrams(f"{s.title} {s.text}") for s in self._sources}
        self._given = ngrams(" ".join(given))
        self._stems = {
            w[:KEYWORD_STEM] for s in self._sources for w in words(f"{s.title} {s.text}")
        }
        self._template = template
        self._template_words = " ".join(words(template))

    def _found(self, claim: Sequence[str], cited: Sequence[str]) -> bool:
        ordered = [*[c for c in cited if c in self._grams], *self._grams]
        return any(_held(claim, self._grams[i]) for i in ordered) or _held(claim, self._given)

    def _title(self, text: str) -> str | None:
        reason = self._one_title(text)
        if reason is None:
            return None
        # Words around the title ("…, published in 2024", "(NeurIPS 2023)") are not part of
        # it: the claim holds when a capitalised run in it is one of the recipient's titles and
        # every other run is in the research.
        parts = title_parts(text)
        titles = [part for part in parts if self._one_title(part) is None]
        others = [part for part in parts if part not in titles]
        if titles and all(self._name_held(part, ()) for part in others):
            return None
        return reason

    def _name_held(self, name: str, cited: Sequence[str]) -> bool:
        """A capitalised name in the research: whole, or each of its parts (numbers in it are
        claims of their own)."""
        name = " ".join(word for word in name.split() if not word.isdigit())
        if self._found(words(name), cited):
            return True
        return all(self._found(words(part), cited) for part in _parts(name))

    def _one_title(self, text: str) -> str | None:
        if any(s.paper and title_matches(text, s.title) for s in self._sources):
            return None
        claim = words(text)
        if any(s.works and _held(claim, self._grams[s.id]) for s in self._sources):
            return None
        if any(
            title_matches(text, s.title) or _held(claim, self._grams[s.id]) for s in self._sources
        ):
            return "a title in the research, but not of one of the recipient's works"
        return "not a title of the recipient's works"

    def _in_template(self, text: str) -> bool:
        claim = " ".join(words(text))
        return bool(claim) and f" {claim} " in f" {self._template_words} "

    def check(self, claim: Claim, cited: Sequence[str]) -> str | None:
        """Why ``claim`` is unsupported, or None when the research (or template) holds it."""
        if claim.kind == "overflow":
            return "too many claims in one value to check"
        if claim.kind == "url":
            papers = {s.url.rstrip("/") for s in self._sources if s.paper}
            if claim.text.rstrip("/") in papers or self._in_template(claim.text):
                return None
            return "a link the template does not have"
        if claim.kind == "email":
            return (
                None if self._in_template(claim.text) else "an address the template does not have"
            )
        if claim.kind == "instruction":
            return (
                None
                if self._in_template(claim.text)
                else "an instruction the template does not have"
            )
        if claim.kind == "title":
            return self._title(claim.text)
        if claim.kind == "keyword":  # "director" is held by "directs", "awarded" by "award"
            stem = claim.text.lower()[:KEYWORD_STEM]
            return None if stem in self._stems else "not in the research"
        if claim.kind == "name":
            return None if self._name_held(claim.text, cited) else "not in the research"
        return None if self._found(words(claim.text), cited) else "not in the research"

    def verify(self, fills: Sequence[Filled]) -> Verdict:
        """Every value's claims checked; a value is supported when none fails."""
        verdict = Verdict()
        for fill in fills:
            failed = [
                Unsupported(fill.placeholder, claim.text, reason)
                for claim in extract(fill.value, fill.placeholder)
                if (reason := self.check(claim, fill.cited)) is not None
            ]
            verdict.supported[fill.placeholder] = not failed
            verdict.unsupported.extend(failed)
        return verdict


def _parts(name: str) -> list[str]:
    """A capitalised run split at its connecting words ("Widget Lab of Oxford" → "Widget Lab",
    "Oxford"): a faithful value may join names the research gives apart."""
    parts: list[list[str]] = [[]]
    for word in name.split():
        if word[:1].islower() or word == "&":
            parts.append([])
        else:
            parts[-1].append(word)
    return [" ".join(part) for part in parts if part]


def template_intact(template: str, placeholders: Sequence[str], email: str) -> bool:
    """Whether every word of ``template`` outside its placeholders is in ``email``, in order,
    and nothing precedes the first or follows the last (whitespace aside)."""
    segments = [template]
    for placeholder in placeholders:
        segments = [piece for segment in segments for piece in segment.split(placeholder)]
    flat = " ".join(email.split())
    position = 0
    pieces = [" ".join(segment.split()) for segment in segments]
    for index, piece in enumerate(pieces):
        if not piece:
            continue
        found = flat.find(piece, position)
        if found < 0 or (index == 0 and found != 0):
            return False
        position = found + len(piece)
    return not pieces[-1] or position == len(flat)
