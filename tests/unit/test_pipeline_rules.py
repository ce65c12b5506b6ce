"""Domain rules and step rules that need no I/O."""

from __future__ import annotations

import pytest

from scribe.clients.output import strip_wrappers
from scribe.domain.names import plain_name, same_author
from scribe.domain.papers import Paper, select_papers
from scribe.domain.placeholders import placeholders_in
from scribe.domain.templates import validate_template
from scribe.domain.text import remove_machine_tells
from scribe.steps.models import ParsedTemplate
from scribe.steps.template_parser import classify
from scribe.steps.web_scraper import build_queries
from tests.fakes.fixtures import item


def test_validate_template_keeps_the_earlier_ten_character_minimum() -> None:
    with pytest.raises(ValueError, match="too short"):
        validate_template("Hi {{n}}")
    with pytest.raises(ValueError, match="blank"):
        validate_template(" \n\t " * 5)
    for text in ("Hi {{name}}", "Hi {{name}}, can we talk?", "Dear {{name}}, " + "I agree. " * 9):
        assert validate_template(text) == text


def test_placeholders_are_found_verbatim_once() -> None:
    text = "Hi {{ name }}, about {{paper}} and {{paper}}"
    assert placeholders_in(text) == ["{{ name }}", "{{paper}}"]


def test_classify() -> None:
    assert classify("I read your paper on X") == "research"
    assert classify("I loved your book") == "book"
    assert classify("I saw your role at the institute") == "general"


def test_machine_tells_and_wrappers_are_removed() -> None:
    assert remove_machine_tells("I want to delve into it \u2014 really") == (
        "I want to explore it, really"
    )
    assert strip_wrappers("<think>x</think>```json\n{}\n```") == "{}"


@pytest.mark.parametrize(
    ("given", "plain"),
    [
        ("Assoc. Prof. Jane Roe", "Jane Roe"),
        ("Prof. Dr. Jane Q. Roe, PhD", "Jane Q. Roe"),
        ("Assistant Professor Jane Roe", "Jane Roe"),
        ("Dr Jane Roe, Ph.D.", "Jane Roe"),
        ("  Ms.   Jane   Roe  ", "Jane Roe"),
        ("Jane Roe", "Jane Roe"),
        ("Dr.", "Dr."),  # nothing but a title: kept as given
    ],
)
def test_plain_name_drops_titles_and_degrees(given: str, plain: str) -> None:
    assert plain_name(given) == plain


def test_web_search_and_arxiv_look_for_the_same_name() -> None:
    inputs = item(name="Assoc. Prof. Jane Roe").inputs
    parsed = ParsedTemplate(template_type="research", search_terms=[], placeholders=[])
    queries = build_queries(inputs, parsed)
    assert queries["background"][0].startswith("Jane Roe:")
    assert "authored by Jane Roe on" in queries["publications"][0]
    assert "Assoc" not in str(queries)


def test_honorifics_and_author_matching() -> None:
    assert same_author("Jane Roe", "J. Roe")
    assert same_author("José Núñez", "Jose Nunez")
    assert not same_author("Jane Roe", "John Roe")
    assert not same_author("Jane Roe", "Jane Doe")


def test_select_papers_prefers_relevant_then_newest() -> None:
    def paper(title: str, year: int, author: str = "Jane Roe") -> Paper:
        return Paper(title=title, arxiv_url="u", year=year, authors=[author])

    papers = [
        paper("Gadgets", 2025),
        paper("Quantum widgets", 2020),
        paper("Widgets again", 2023),
        paper("Old widgets", 2001),
        paper("Widgets by someone else", 2024, "Other Person"),
    ]
    chosen = select_papers("Jane Roe", "widgets", papers)
    assert [p.title for p in chosen] == ["Widgets again", "Quantum widgets", "Gadgets"]
