"""Which research counts for a recipient (scribe.domain.sources, names.names_person) and which
passages the composer reads (scribe.domain.ranking)."""

from __future__ import annotations

import pytest

from scribe.domain.names import names_person
from scribe.domain.ranking import Passage, bm25_scores, choose, passages, terms
from scribe.domain.sources import reason_to_drop
from scribe.steps.composer_brief import MAX_VALUE_CHARS, clean_value


@pytest.mark.parametrize(
    ("text", "name", "named"),
    [
        ("Jane Roe is a professor.", "Prof. Jane Roe", True),
        ("J. Roe and others", "Jane Roe", True),
        ("Jane Q. Roe leads the lab", "Jane Roe", True),
        ("JANE ROE", "jane roe", True),
        ("María Núñez wrote it", "Maria Nunez", True),
        ("Roe, the lab", "Roe", True),  # a one-word name: the word
        ("Alan Roe is a chef", "Jane Roe", False),  # another first name
        ("Jane Canary is Director of the lab", "Alan Turing", False),
        ("Roe v. Wade", "Jane Roe", False),
        ("Jane Roebuck", "Jane Roe", False),  # whole words only
        ("", "Jane Roe", False),
        ("Jane Roe", "Dr.", False),
    ],
)
def test_names_person(text: str, name: str, named: bool) -> None:
    assert names_person(text, name) is named


def test_only_pages_about_the_recipient_count() -> None:
    interest = "quantum widgets"
    assert reason_to_drop("Profile", "Jane Roe builds widgets.", "Jane Roe", interest) is None
    assert reason_to_drop("Jane Roe", "Quantum lab page.", "Dr Jane Roe", interest) is None
    assert reason_to_drop("Lab", "Jane Canary is Director.", "Jane Roe", interest) == (
        "does not name the recipient"
    )
    namesake = reason_to_drop("Chef", "Jane Roe cooks pasta in Rome.", "Jane Roe", interest)
    assert namesake == "names the recipient but not their field (a namesake?)"
    assert reason_to_drop("x", "Jane Roe cooks pasta.", "Jane Roe", "a b") is None  # no words
    # A profile that words the interest differently is still about an academic.
    profile = "Jane Roe is a professor at the University of Gadgets."
    assert reason_to_drop("Profile", profile, "Jane Roe", interest) is None


def test_passages_cut_at_sentences_within_the_size() -> None:
    text = "First sentence here. " * 30 + "x" * 700
    found = passages("W1", "background", text, size=100)
    assert all(len(p.text) <= 100 for p in found)
    assert [p.position for p in found] == list(range(len(found)))
    assert "".join(p.text.replace(" ", "") for p in found) == text.replace(" ", "")


def test_bm25_prefers_the_passage_with_the_rare_query_words() -> None:
    documents = [terms("widgets widgets and gadgets"), terms("gadgets only"), terms("nothing")]
    scores = bm25_scores(terms("quantum widgets"), documents)
    assert scores[0] > scores[1] == scores[2] == 0.0
    assert bm25_scores(["a"], []) == []


def _passage(source: str, group: str, position: int, text: str) -> Passage:
    return Passage(source, group, position, text)


def test_choose_takes_from_every_group_within_the_budget() -> None:
    background = [_passage("W1", "background", i, f"Jane Roe widgets {i} " * 10) for i in range(10)]
    publications = [_passage("W2", "publications", 0, "Entangled widgets paper by Roe.")]
    chosen = choose([*background, *publications], "Jane Roe widgets paper", budget=450)
    assert sum(len(p.text) for p in chosen) <= 450
    assert {p.group for p in chosen} == {"background", "publications"}  # none crowded out
    assert chosen == sorted(chosen, key=lambda p: (p.source_id, p.position))


def test_choose_reads_a_repeated_passage_once() -> None:
    same = [_passage("W1", "background", i, "Jane Roe builds widgets.") for i in range(5)]
    assert len(choose(same, "widgets", budget=1000)) == 1


def test_values_are_one_bounded_line_without_placeholder_syntax() -> None:
    known = ["{{a}}", "[Area]"]
    assert clean_value("  widgets\n\nand\x00 gadgets  ", known) == "widgets and gadgets"
    assert clean_value("see {{a}} and [Area] and {{b}}", known) == "see and and b"
    assert clean_value("ideas \u2014 widgets", known) == "ideas, widgets"
    assert clean_value("widgets [W1] and gadgets (P1, W2)", known) == "widgets and gadgets"
    long = clean_value("word " * 1000, known)
    assert len(long) <= MAX_VALUE_CHARS and long.endswith("word")
