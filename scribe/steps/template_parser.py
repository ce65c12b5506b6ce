"""Step 1, template_parser: classify the template, list its placeholders, pick search terms.

Reads the item's inputs; needs the parser LLM and the process's shared analyses; adds a
``ParsedTemplate``.

The template's type and placeholders depend on the template alone, so they are asked of the model
once per template (``SharedAnalyses``: one call however many items of a batch start at once, and
stored for other processes and retries), never per item. The recipient's search terms need no
model: they are built here from the name, the interest and the template's type.
"""

from __future__ import annotations

import hashlib
import re

from pydantic import BaseModel, Field

from scribe.clients.analyses import SharedAnalyses
from scribe.clients.llm import LLM, LLMRequest
from scribe.domain.names import plain_name
from scribe.domain.placeholders import placeholders_in
from scribe.providers.account import Timer
from scribe.steps.models import EmailInputs, ParsedTemplate, TemplateType, Usage

MAX_SEARCH_TERMS = 3
MAX_TERM_CHARS = 500
MAX_PLACEHOLDERS = 100  # placeholders kept per template (a 10,000-char template fits ~1,600)
MAX_PLACEHOLDER_CHARS = 200
# Part of every analysis key: raise it when the prompt or TemplateAnalysis changes, so analyses
# stored by an older release are not reused.
ANALYSIS_VERSION = 2


class TemplateAnalysis(BaseModel):
    """What the parser model returns (and what is kept per template)."""

    template_type: TemplateType
    placeholders: list[str] = Field(description="every placeholder, verbatim as in the template")


SYSTEM = """You analyse cold-email templates that students send to professors and researchers.
Classify the template:
- "research": it refers to the recipient's papers, publications or research results;
- "book": it refers to a book the recipient wrote;
- "general": it refers to their background, position, lab or work in general.
List every placeholder exactly as written in the template (for example {{professor_name}} or
[Research Area]), including the braces or brackets, in order of appearance."""

# Linear: \b-anchored alternations of literal phrases, no quantifiers, so each start position
# costs a bounded number of steps.
_RESEARCH = re.compile(
    r"\b(paper|papers|publication|publications|published|preprint|arxiv|study|studies|"
    r"findings|research on|your research|your work on|article)\b",
    re.IGNORECASE,
)
_BOOK = re.compile(r"\b(book|books|novel|your writing|chapter|memoir)\b", re.IGNORECASE)

# The second search term by template type (the first is always name + interest).
_TYPE_TERMS: dict[TemplateType, str] = {
    "research": "{name} publications",
    "book": "{name} books",
    "general": "{name} university profile",
}


def classify(template: str) -> TemplateType:
    """Rule-based template type (the offline provider's answer)."""
    if _BOOK.search(template):
        return "book"
    if _RESEARCH.search(template):
        return "research"
    return "general"


def analyse_offline(template: str) -> TemplateAnalysis:
    """The parser's answer without a model."""
    return TemplateAnalysis(
        template_type=classify(template), placeholders=placeholders_in(template)
    )


def offline_analysis(inputs: EmailInputs) -> TemplateAnalysis:
    """The parser's answer without a model, for an item."""
    return analyse_offline(inputs.email_template)


def checked(template: str, analysis: TemplateAnalysis) -> TemplateAnalysis:
    """The model's analysis made safe: only the placeholders that really occur are kept (nothing
    invented), and none of the regex's is lost."""
    placeholders = [
        p
        for p in dict.fromkeys(analysis.placeholders[:MAX_PLACEHOLDERS])
        if p and len(p) <= MAX_PLACEHOLDER_CHARS and p in template
    ]
    known = set(placeholders)
    placeholders += [p for p in placeholders_in(template) if p not in known]
    return TemplateAnalysis(
        template_type=analysis.template_type, placeholders=placeholders[:MAX_PLACEHOLDERS]
    )


def search_terms(inputs: EmailInputs, template_type: TemplateType) -> list[str]:
    """The recipient's search terms: each names them; the first adds their interest (the
    background search reads it), the second what the template type looks for."""
    name = plain_name(inputs.recipient_name)
    interest = " ".join(inputs.recipient_interest.split())
    terms = [f"{name} {interest}".strip(), _TYPE_TERMS[template_type].format(name=name)]
    return list(dict.fromkeys(term[:MAX_TERM_CHARS] for term in terms))[:MAX_SEARCH_TERMS]


def merge(inputs: EmailInputs, analysis: TemplateAnalysis) -> ParsedTemplate:
    """The item's ``ParsedTemplate`` from its template's analysis."""
    safe = checked(inputs.email_template, analysis)
    return ParsedTemplate(
        template_type=safe.template_type,
        search_terms=search_terms(inputs, safe.template_type),
        placeholders=safe.placeholders,
    )


def analysis_key(inputs: EmailInputs, model: str) -> str:
    """What an analysis depends on, hashed: its format, the model, the template. The user is
    part of it so that one user's templates never answer for another's (even by timing)."""
    parts = (str(ANALYSIS_VERSION), model, str(inputs.user_id), inputs.email_template)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


async def run(
    inputs: EmailInputs, llm: LLM, analyses: SharedAnalyses, timer: Timer | None = None
) -> ParsedTemplate:
    """The item's template analysis (asked of the parser model, or of the rules when offline,
    once per template) and its search terms. The item that made the call carries its usage.
    ``timer``: the step's, held while the call waits for its provider account."""
    template = inputs.email_template
    usage: list[Usage] = []

    async def analyse() -> TemplateAnalysis:
        response = await llm.generate(
            LLMRequest(
                purpose="template_parser",
                system=SYSTEM,
                prompt=f"Template:\n<template>\n{template}\n</template>",
                output=TemplateAnalysis,
                offline=lambda: analyse_offline(template),
                max_tokens=1024,
                timer=timer,
            )
        )
        usage.append(Usage.model_validate(response.usage))
        return checked(template, response.value)

    analysis, _ = await analyses.get(analysis_key(inputs, llm.model), TemplateAnalysis, analyse)
    return merge(inputs, analysis).model_copy(update={"usage": usage})
