"""Step 4, email_composer: write the email from the template, the research and the papers.

Reads the inputs and every earlier step's output (a ``Brief``); needs the composer LLM; adds a
``WrittenEmail``.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from pydantic import BaseModel

from scribe.clients.llm import LLM, LLMRequest
from scribe.clients.offline import OFFLINE
from scribe.clients.output import strip_wrappers
from scribe.domain import placeholders
from scribe.domain.names import plain_name
from scribe.domain.text import remove_machine_tells
from scribe.steps.models import (
    EmailInputs,
    GenerationMetadata,
    PaperSearch,
    ParsedTemplate,
    Usage,
    WebResearch,
    WrittenEmail,
)

# A model answer is cut to this before any cleanup, so a runaway (or hostile) provider costs
# bounded CPU here; the stored email is capped again, at SCRIBE_MAX_EMAIL_CHARS, at completion.
MAX_ANSWER_CHARS = 100_000
PAPER_ABSTRACT_CHARS = 400


class ComposedEmail(BaseModel):
    """What the composer model returns."""

    email: str
    is_confident: bool


@dataclass(frozen=True, slots=True)
class Brief:
    """What the composer reads: the item's inputs and the three earlier steps' outputs."""

    inputs: EmailInputs
    template: ParsedTemplate
    research: WebResearch
    papers: PaperSearch


SYSTEM = """You personalise academic cold emails. You get a template, facts about the recipient
found on the web, and their arXiv papers. Write the final email:
- Keep every word of the template outside its placeholders exactly as written, with the same
  voice, paragraphs and formatting. Only replace the placeholders.
- Fill every placeholder (such as {{name}} or [Research Area]) with specific facts from the
  research below. Prefer arXiv paper titles over titles found on the web.
- Never invent papers, positions, dates or facts. If the research does not support a specific
  detail, use a truthful general phrase and set is_confident to false.
- Avoid em dashes and stock phrases such as "delve", "leverage", "cutting-edge" and "I hope this
  email finds you well".
Return the finished email and whether every placeholder was filled from real research."""


def _research_block(brief: Brief) -> str:
    papers = "\n".join(
        f"- {p.title} ({p.year}) {p.arxiv_url}\n  {p.abstract[:PAPER_ABSTRACT_CHARS]}"
        for p in brief.papers.arxiv_papers
    )
    content = brief.research.scraped_content
    return (
        f"<web_research>\n{content or '(none found)'}\n</web_research>\n\n"
        f"<arxiv_papers>\n{papers or '(none found)'}\n</arxiv_papers>"
    )


def build_prompt(brief: Brief) -> str:
    """The composer's user prompt (template, recipient, placeholders, research)."""
    inputs = brief.inputs
    placeholder_list = ", ".join(brief.template.placeholders) or "(none)"
    return (
        f"Recipient: {inputs.recipient_name}\n"
        f"Their research interest: {inputs.recipient_interest}\n"
        f"Template type: {brief.template.template_type}\n"
        f"Placeholders to fill: {placeholder_list}\n\n"
        f"<template>\n{inputs.email_template}\n</template>\n\n{_research_block(brief)}"
    )


def fill_value(placeholder: str, brief: Brief) -> str:
    """The rule-based value of one placeholder: the recipient's name, a paper title, or their
    interest."""
    key = re.sub(r"[^a-z]+", " ", placeholder.lower())  # one class run per gap: linear
    name = plain_name(brief.inputs.recipient_name)
    if any(word in key for word in ("name", "professor", "recipient", "dr ")):
        return name.split()[-1] if "last" in key or "surname" in key else name
    if any(word in key for word in ("paper", "publication", "article", "book", "title")):
        if brief.papers.arxiv_papers:
            return brief.papers.arxiv_papers[0].title
        citations = brief.research.scraping_metadata.citations or []
        titles = [c.title for c in citations]
        return next((t for t in titles if t), f"your work on {brief.inputs.recipient_interest}")
    return brief.inputs.recipient_interest


def fill_placeholders(text: str, brief: Brief) -> str:
    """Replace every placeholder still in ``text`` with a rule-based value."""
    return placeholders.fill(text, brief.template.placeholders, lambda p: fill_value(p, brief))


def offline_email(brief: Brief) -> ComposedEmail:
    """The composer's answer without a model: the template with rule-filled placeholders."""
    email = fill_placeholders(brief.inputs.email_template, brief)
    return ComposedEmail(email=email, is_confident=False)


def finish_email(answer: str, brief: Brief) -> tuple[str, list[str]]:
    """The model's email cleaned (wrappers, machine tells) with every placeholder filled, and
    the placeholders the model had left unfilled."""
    raw = strip_wrappers(answer[:MAX_ANSWER_CHARS])
    # A very short template can consist of nothing but a stock phrase: keep the words then.
    email = remove_machine_tells(raw).strip() or raw
    left = placeholders.unfilled(email, brief.template.placeholders)
    if left:
        email = fill_placeholders(email, brief)
    return email, left


async def run(brief: Brief, llm: LLM) -> WrittenEmail:
    """Compose the email; decide ``is_confident``; every placeholder ends up filled."""
    response = await llm.generate(
        LLMRequest(
            purpose="email_composer",
            system=SYSTEM,
            prompt=build_prompt(brief),
            output=ComposedEmail,
            offline=lambda: offline_email(brief),
            max_tokens=2048,
        )
    )
    # In a thread: linear, but an answer of MAX_ANSWER_CHARS costs tens of milliseconds.
    email, left = await asyncio.to_thread(finish_email, response.value.email, brief)
    reasons = []
    if llm.model == OFFLINE:
        reasons.append("written offline (no model configured)")
    if not response.value.is_confident:
        reasons.append("model not confident")
    if left:
        reasons.append("placeholders left unfilled by the model: " + ", ".join(left))
    if not brief.research.scraped_content and not brief.papers.arxiv_papers:
        reasons.append("no research data found")
    metadata = GenerationMetadata(
        composer_model=llm.model,
        placeholders=brief.template.placeholders,
        unfilled_placeholders=left,
        not_confident_reasons=reasons,
    )
    return WrittenEmail(
        email_message=email.strip(),
        is_confident=not reasons,
        model=llm.model,
        generation_metadata=metadata,
        usage=[Usage.model_validate(response.usage)],
    )
