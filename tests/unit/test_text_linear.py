"""Worst-case inputs at each size limit for every function that runs on user or model text.

The bound (1 s) is a guard against catastrophic backtracking only (the placeholder regex took
80 s on 5,000 spaces); real timings are in bench/hostile.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from scribe.api.template_generation import word_count
from scribe.clients.output import strip_wrappers
from scribe.domain.names import plain_name
from scribe.domain.placeholders import placeholders_in, unfilled
from scribe.domain.text import bounded_text, plain_title, remove_machine_tells
from scribe.steps.template_parser import classify

GUARD_SECONDS = 1.0
TEMPLATE_LIMIT = 10_000  # the API's email_template max_length
MODEL_ANSWER = 100_000  # email_composer.MAX_ANSWER_CHARS: model text is cut to this first

ADVERSARIAL = {
    "open braces then spaces": "{{" + " " * (TEMPLATE_LIMIT - 2),
    "open braces, spaces, a letter": "{{" + " " * (TEMPLATE_LIMIT - 3) + "x",
    "unclosed placeholders": "{{ a " * (TEMPLATE_LIMIT // 5),
    "one closing brace each": "{{a}" * (TEMPLATE_LIMIT // 4),
    "nested braces": "{" * (TEMPLATE_LIMIT // 2) + "}" * (TEMPLATE_LIMIT // 2),
    "nested brackets": "[" * (TEMPLATE_LIMIT // 2) + "]" * (TEMPLATE_LIMIT // 2),
    "angle brackets": "<" * (TEMPLATE_LIMIT // 2) + ">" * (TEMPLATE_LIMIT // 2),
    "many placeholders": "{{p}} " * (TEMPLATE_LIMIT // 6),
    "em dash in spaces": (" " * 999 + "\u2014") * (TEMPLATE_LIMIT // 1000),
}
MODEL_TEXTS = {
    "whitespace run": " " * MODEL_ANSWER + "x",
    "em dashes and spaces": ("\u2014" + " " * 99) * (MODEL_ANSWER // 100),
    "unclosed think tags": "<think>" * (MODEL_ANSWER // 7),
    "unclosed fence": "```" + " " * MODEL_ANSWER + "x",
    "fence then spaces": "```json\n" + "``` " * (MODEL_ANSWER // 4),
    "stock phrase then spaces": "I hope this email finds you well" + " " * MODEL_ANSWER + "x",
    "tags": "<b" * (MODEL_ANSWER // 2),
}


def within_guard(function: Callable[[str], object], text: str) -> float:
    started = time.perf_counter()
    function(text)
    elapsed = time.perf_counter() - started
    assert elapsed < GUARD_SECONDS, f"{function.__name__} took {elapsed:.2f} s"
    return elapsed


TEMPLATE_FUNCTIONS: list[Callable[[str], object]] = [
    placeholders_in,
    remove_machine_tells,
    word_count,
    classify,
    strip_wrappers,
    lambda text: unfilled(text, ["{{name}}"]),
]


@pytest.mark.parametrize("name", ADVERSARIAL)
@pytest.mark.parametrize("function", TEMPLATE_FUNCTIONS)
def test_template_text_functions_finish_on_adversarial_templates(
    name: str, function: Callable[[str], object]
) -> None:
    within_guard(function, ADVERSARIAL[name])


@pytest.mark.parametrize("name", MODEL_TEXTS)
@pytest.mark.parametrize(
    "function",
    [
        strip_wrappers,
        remove_machine_tells,
        placeholders_in,
        lambda text: bounded_text(text, 20_000),
        lambda text: plain_title(text, 300),
    ],
)
def test_model_text_functions_finish_on_adversarial_answers(
    name: str, function: Callable[[str], object]
) -> None:
    within_guard(function, MODEL_TEXTS[name])


def test_plain_name_finishes_on_honorific_and_whitespace_runs() -> None:
    within_guard(plain_name, "Dr. " * 64 + " " * 100_000 + "x")
    within_guard(plain_name, "Prof" + " " * 100_000)
    within_guard(plain_name, "x" + " PhD," * 20_000)


def test_placeholder_scan_keeps_its_meaning() -> None:
    template = "Dear {{ name }}, {{}} {{a}b}} {{{x}}} {{ paper title }} {{ name }} {{" + " " * 50
    assert placeholders_in(template) == ["{{ name }}", "{{x}}", "{{ paper title }}"]


def test_em_dashes_become_commas_with_the_whitespace_around_them() -> None:
    assert remove_machine_tells("work \u2014  on widgets\u2014and more") == (
        "work, on widgets, and more"
    )
    assert remove_machine_tells("a \u2014 \u2014 b") == "a,, b"


def test_reasoning_and_fences_are_stripped_without_regex_backtracking() -> None:
    assert strip_wrappers('<think>plan</think>```json\n{"a": 1}\n```') == '{"a": 1}'
    assert strip_wrappers("<THINK>x</think> kept <think> open") == "kept <think> open"
    assert strip_wrappers("```") == "```"
