"""Step 1, template_parser: classify the template, pick search terms, list its placeholders.

Reads the item's inputs; needs the parser LLM; adds a ``ParsedTemplate``.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from scribe.clients.llm import LLM, LLMRequest
from scribe.domain.names import plain_name
from scribe.domain.placeholders import placeholders_in
from scribe.steps.models import EmailInputs, ParsedTemplate, TemplateType, Usage

MAX_MODEL_TERMS = 10  # of the model's search terms, only the first few are read (3 are kept)
MAX_SEARCH_TERMS = 3
MAX_PLACEHOLDERS = 100  # placeholders kept per template (a 10,000-char template fits ~1,600)
MAX_PLACEHOLDER_CHARS = 200


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


def offline_analysis(inputs: EmailInputs) -> TemplateAnalysis:
    """The parser's answer without a model."""
    name = plain_name(inputs.recipient_name)
    return TemplateAnalysis(
        template_type=classify(inputs.email_template),
        search_terms=[f"{name} {inputs.recipient_interest}", f"{name} university profile"],
        placeholders=placeholders_in(inputs.email_template),
    )


def merge(inputs: EmailInputs, analysis: TemplateAnalysis) -> ParsedTemplate:
    """The model's analysis made safe: every search term names the recipient, and only the
    placeholders that really occur are kept, none of the regex's lost."""
    name = plain_name(inputs.recipient_name)
    terms: list[str] = []
    for term in analysis.search_terms[:MAX_MODEL_TERMS]:
        term = " ".join(term[:500].split())
        if name.lower() not in term.lower():
            term = f"{name} {term}"
        if term and term not in terms:
            terms.append(term)
    if not terms:
        terms = [f"{name} {inputs.recipient_interest}"]
    template = inputs.email_template
    found = placeholders_in(template)
    # The model's list is kept only for placeholders that really occur (nothing invented), and
    # the regex's list guarantees none is lost.
    placeholders = [
        p
        for p in dict.fromkeys(analysis.placeholders[:MAX_PLACEHOLDERS])
        if p and len(p) <= MAX_PLACEHOLDER_CHARS and p in template
    ]
    known = set(placeholders)
    placeholders += [p for p in found if p not in known]
    return ParsedTemplate(
        template_type=analysis.template_type,
        search_terms=terms[:MAX_SEARCH_TERMS],
        placeholders=placeholders[:MAX_PLACEHOLDERS],
    )


async def run(inputs: EmailInputs, llm: LLM) -> ParsedTemplate:
    """Analyse the template with the parser model (or rules when offline)."""
    prompt = (
        f"Recipient: {inputs.recipient_name}\nTheir research interest: "
        f"{inputs.recipient_interest}\n\n"
        f"Template:\n<template>\n{inputs.email_template}\n</template>"
    )
    response = await llm.generate(
        LLMRequest(
            purpose="template_parser",
            system=SYSTEM,
            prompt=prompt,
            output=TemplateAnalysis,
            offline=lambda: offline_analysis(inputs),
            max_tokens=1024,
        )
    )
    parsed = merge(inputs, response.value)
    return parsed.model_copy(update={"usage": [Usage.model_validate(response.usage)]})
