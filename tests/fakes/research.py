"""Search results the size of real ones, for the token benchmark: every Exa query answers ten
hits of about 3,000 characters about the person it names (a profile, lab and news pages for a
background query; publication lists for a publications query), varied but deterministic."""

from __future__ import annotations

import random
import re
from typing import Any

HITS_PER_QUERY = 10
HIT_CHARS = 3_000
_NAME = re.compile(r"[A-Z][a-z]+ [A-Z][a-z]+")  # the first two capitalised words in a row

_BACKGROUND = (
    "{name} is a professor of computer science at the Zorblax Institute for Quantum Widgets.",
    "{name} leads the Widget Systems Laboratory, a group of twelve doctoral students.",
    "Before joining the institute, {name} was a research scientist at Gadget Labs for six years.",
    "{name} teaches the graduate course on widget theory and an undergraduate seminar.",
    "The lab led by {name} studies how quantum widgets behave when thousands are entangled.",
    "{name} received a doctorate from the University of Northfield in 2009.",
    "In 2021 {name} gave a keynote on scalable widget fabrication at the Widget Summit.",
    "{name} serves on the programme committee of the International Gadget Conference.",
    "Students in the group of {name} work on error correction, fabrication and benchmarks.",
    "{name} collaborates with industry partners on low-power widget controllers.",
    "The department news page reports that {name} won a teaching award last spring.",
    "Prospective students are encouraged to read recent papers before writing to {name}.",
)
_PUBLICATIONS = (
    "{title} ({year}), by {name} and co-authors, appeared in the Journal of Widget Science.",
    "In {title} ({year}), {name} and colleagues measure entanglement across widget arrays.",
    "{name} is the corresponding author of {title}, published in {year}.",
    "{title} ({year}) by {name} proposes a benchmark suite for noisy quantum widgets.",
    "The preprint {title} ({year}) lists {name} as first author with three collaborators.",
)
_TOPICS = (
    "Entangled Widgets at Scale",
    "Error Correction for Noisy Widget Arrays",
    "Low-Power Controllers for Quantum Gadgets",
    "A Benchmark Suite for Widget Fabrication",
    "Thermal Noise in Large Widget Lattices",
    "Learning Widget Dynamics from Sparse Measurements",
)


def named_in(query: str) -> str:
    """The person a query names (its first two capitalised words), else a stand-in."""
    match = _NAME.search(query)
    return match.group(0) if match else "the researcher"


def _text(query: str, name: str, seed: int, publications: bool) -> str:
    rng = random.Random(f"{query}|{seed}")
    sentences: list[str] = []
    while sum(len(s) + 1 for s in sentences) < HIT_CHARS:
        if publications:
            template = rng.choice(_PUBLICATIONS)
            sentence = template.format(
                name=name, title=rng.choice(_TOPICS), year=rng.randint(2016, 2025)
            )
        else:
            sentence = rng.choice(_BACKGROUND).format(name=name)
        sentences.append(sentence)
    return " ".join(sentences)[:HIT_CHARS]


def realistic_hits(query: str, site: str) -> list[dict[str, Any]]:
    """Ten ~3,000-character hits for ``query`` (its own URLs under ``site``)."""
    name = named_in(query)
    publications = "ublication" in query or "authored" in query or "Books" in query
    kind = "publications" if publications else "profile"
    slug = re.sub(r"[^a-z]+", "-", name.lower()).strip("-") or "person"
    return [
        {
            "id": f"{kind}-{slug}-{n}",
            "url": f"{site}/{kind}-{slug}-{n}",
            "title": f"{name}: {'publications' if publications else 'profile'} ({n})",
            "text": _text(query, name, n, publications),
            "publishedDate": "2024-01-01",
        }
        for n in range(1, HITS_PER_QUERY + 1)
    ]
