"""Step 1, template_parser: classify the template, pick search terms, list its placeholders."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from scribe.clients.llm import LLMRequest
from scribe.steps.data import PipelineData, TemplateType
from scribe.steps.text import placeholders_in, plain_name

if TYPE_CHECKING:
    from scribe.clients import Clients

# The earlier backend's contract, which the frontend relies on (it only checks "not blank"):
# a short template is analysed like any other (the offline rules and the merge cope with it).
MIN_TEMPLATE_CHARS = 10
MAX_MODEL_TERMS = 10  # of the model's search terms, only the first few are read (3 are kept)
MAX_PLACEHOLDERS = 100  # placeholders kept per template (a 10,000-char template fits ~1,600)
MAX_PLACEHOLDER_CHARS = 200


def validate_template(text: str) -> str:
    """Return the template when it is not blank and at least 10 characters; ValueError otherwise.

    Usable as a pydantic validator, so a short template is a 422 at the API, before queueing.
    """
    if not text.strip():
        raise ValueError("Template must not be blank.")
    if len(text) < MIN_TEMPLATE_CHARS:
        raise ValueError(f"Template is too short: write at least {MIN_TEMPLATE_CHARS} characters.")
    return text


class TemplateAnalysis(BaseModel):
    """What the parser model returns."""

    template_type: TemplateType
    search_terms: list[str] = Field(description="1 to 3 web search queries naming the recipient")
    placeholders: list[str] = Field(description="every placeholder, verbatim as in the template")


SYSTEM = """You analyse cold-email templates that students send to professors and researchers.
Classify the template:
- "research": it refers to the recipient's papers, publications or research results;
- "book": it refers to a book the recipient wrote;
- "general": it refers to their background, position, lab or work in general.
List every placeholder exactly as written in the template (for example {{professor_name}} or
[Research Area]), including the braces or brackets, in order of appearance.
Write 1 to 3 web search queries that would find this recipient's background and work; every
query must contain the recipient's full name."""

# Linear: \b-anchored alternations of literal phrases, no quantifiers, so each start position
# costs a bounded number of steps.
_RESEARCH = re.compile(
    r"\b(paper|papers|publication|publications|published|preprint|arxiv|study|studies|"
    r"findings|research on|your research|your work on|article)\b",
    re.IGNORECASE,
)
_BOOK = re.compile(r"\b(book|books|novel|your writing|chapter|memoir)\b", re.IGNORECASE)


def classify(template: str) -> TemplateType:
    """Rule-based template type (the offline provider's answer)."""
    if _BOOK.search(template):
        return "book"
    if _RESEARCH.search(template):
        return "research"
    return "general"


def offline_analysis(data: PipelineData) -> TemplateAnalysis:
    """The parser's answer without a model."""
    name = plain_name(data.recipient_name)
    return TemplateAnalysis(
        template_type=classify(data.email_template),
        search_terms=[f"{name} {data.recipient_interest}", f"{name} university profile"],
        placeholders=placeholders_in(data.email_template),
    )


def _merge(data: PipelineData, analysis: TemplateAnalysis) -> PipelineData:
    name = plain_name(data.recipient_name)
    terms: list[str] = []
    for term in analysis.search_terms[:MAX_MODEL_TERMS]:
        term = " ".join(term[:500].split())
        if name.lower() not in term.lower():
            term = f"{name} {term}"
        if term and term not in terms:
            terms.append(term)
    if not terms:
        terms = [f"{name} {data.recipient_interest}"]
    found = placeholders_in(data.email_template)
    # The model's list is kept only for placeholders that really occur (nothing invented), and
    # the regex's list guarantees none is lost.
    placeholders = [
        p
        for p in dict.fromkeys(analysis.placeholders[:MAX_PLACEHOLDERS])
        if p and len(p) <= MAX_PLACEHOLDER_CHARS and p in data.email_template
    ]
    known = set(placeholders)
    placeholders += [p for p in found if p not in known]
    return data.model_copy(
        update={
            "template_type": analysis.template_type,
            "search_terms": terms[:3],
            "placeholders": placeholders[:MAX_PLACEHOLDERS],
        }
    )


async def run(data: PipelineData, clients: Clients) -> PipelineData:
    """Analyse the template with the parser model (or rules when offline)."""
    prompt = (
        f"Recipient: {data.recipient_name}\nTheir research interest: {data.recipient_interest}\n\n"
        f"Template:\n<template>\n{data.email_template}\n</template>"
    )
    response = await clients.parser_llm.generate(
        LLMRequest(
            purpose="template_parser",
            system=SYSTEM,
            prompt=prompt,
            output=TemplateAnalysis,
            offline=lambda: offline_analysis(data),
            max_tokens=1024,
        )
    )
    merged = _merge(data, response.value)
    return merged.model_copy(update={"usage": [*data.usage, response.usage]})
