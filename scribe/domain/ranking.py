"""Which research passages the composer reads: sources cut into passages, ranked by BM25
against what the email needs (the recipient, their interest, the placeholders), and chosen in
turn from each group of sources (each search, the papers) so that none crowds out the others.

Pure and linear in the text: passages are cut by one forward scan, every score is a sum over a
passage's words.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from scribe.domain.names import fold


def wordset(text: str) -> frozenset[str]:
    """The space-separated words of ``text`` as a set (for word lists written as one string)."""
    return frozenset(text.split())


PASSAGE_CHARS = 320  # a passage is about two sentences: enough context for one fact
BM25_K1 = 1.5
BM25_B = 0.75
_WORD = re.compile(r"[a-z0-9]+")  # linear: one class run
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")  # a fixed look-behind and one class run
_STOPWORDS = wordset(
    "a an and are as at be by for from has have in is it its of on or that the this to was "
    "were with your you their his her they he she we our my i"
)


@dataclass(frozen=True, slots=True)
class Passage:
    """A piece of a source's text: the source's id and group, its position, its text."""

    source_id: str
    group: str
    position: int
    text: str


def terms(text: str) -> list[str]:
    """The words of ``text`` that carry meaning: folded, stopwords and single letters out."""
    return [w for w in _WORD.findall(fold(text)) if w not in _STOPWORDS and len(w) > 1]


def passages(source_id: str, group: str, text: str, size: int = PASSAGE_CHARS) -> list[Passage]:
    """``text`` cut at sentence ends into passages of about ``size`` characters (a sentence
    longer than ``size`` is cut at ``size``)."""
    found: list[Passage] = []
    current = ""
    for sentence in _SENTENCE_END.split(" ".join(text.split())):
        if len(sentence) > size:  # cut into pieces of ``size``; the last one goes on
            if current:
                found.append(Passage(source_id, group, len(found), current))
                current = ""
            cut = len(sentence) - (len(sentence) % size or size)
            for start in range(0, cut, size):
                found.append(Passage(source_id, group, len(found), sentence[start : start + size]))
            sentence = sentence[cut:]
        if current and len(current) + 1 + len(sentence) > size:
            found.append(Passage(source_id, group, len(found), current))
            current = ""
        current = f"{current} {sentence}" if current else sentence
    if current:
        found.append(Passage(source_id, group, len(found), current))
    return found


def bm25_scores(query: Sequence[str], documents: Sequence[Sequence[str]]) -> list[float]:
    """The Okapi BM25 score of each tokenised document for the tokenised query."""
    if not documents:
        return []
    count = len(documents)
    average = sum(len(d) for d in documents) / count or 1.0
    frequency: Counter[str] = Counter()
    for document in documents:
        frequency.update(set(document))
    wanted = set(query)
    idf = {
        t: math.log(1 + (count - frequency[t] + 0.5) / (frequency[t] + 0.5))
        for t in wanted
        if frequency[t]
    }
    scores = []
    for document in documents:
        counts = Counter(w for w in document if w in idf)
        norm = BM25_K1 * (1 - BM25_B + BM25_B * len(document) / average)
        scores.append(sum(idf[t] * c * (BM25_K1 + 1) / (c + norm) for t, c in counts.items()))
    return scores


def choose(candidates: Sequence[Passage], query: str, budget: int) -> list[Passage]:
    """The best passages for ``query`` within ``budget`` characters, taken in turn from each
    group (best first within a group), each text once, returned in source and position order."""
    scores = bm25_scores(terms(query), [terms(p.text) for p in candidates])
    groups: dict[str, list[tuple[float, int, Passage]]] = {}
    for index, (score, passage) in enumerate(zip(scores, candidates, strict=True)):
        groups.setdefault(passage.group, []).append((-score, index, passage))
    queues = [sorted(group, reverse=True) for group in groups.values()]  # best last
    chosen: list[tuple[int, Passage]] = []
    seen: set[str] = set()  # a page that repeats itself is read once
    used = 0
    while any(queues):
        for queue in queues:
            if not queue:
                continue
            _, index, passage = queue.pop()
            if passage.text not in seen and used + len(passage.text) <= budget:
                chosen.append((index, passage))
                seen.add(passage.text)
                used += len(passage.text)
    return [passage for _, passage in sorted(chosen, key=lambda item: item[0])]
