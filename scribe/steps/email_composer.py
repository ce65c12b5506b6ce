"""Step 4, email_composer: write the email from the template, the research and the papers."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

from pydantic import BaseModel

from scribe.clients.llm import LLMRequest
from scribe.clients.offline import OFFLINE
from scribe.clients.output import strip_wrappers
from scribe.steps.data import PipelineData
from scribe.steps.text import PLACEHOLDER, plain_name, remove_machine_tells

if TYPE_CHECKING:
    from scribe.clients import Clients

# A model answer is cut to this before any cleanup, so a runaway (or hostile) provider costs
# bounded CPU here; the stored email is capped again, at SCRIBE_MAX_EMAIL_CHARS, at completion.
MAX_ANSWER_CHARS = 100_000


class ComposedEmail(BaseModel):
    """What the composer model returns."""

    email: str
    is_confident: bool


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


def _research_block(data: PipelineData) -> str:
    papers = "\n".join(
        f"- {p.title} ({p.year}) {p.arxiv_url}\n  {p.abstract[:400]}" for p in data.arxiv_papers
    )
    return (
        f"<web_research>\n{data.scraped_content or '(none found)'}\n</web_research>\n\n"
        f"<arxiv_papers>\n{papers or '(none found)'}\n</arxiv_papers>"
    )


def build_prompt(data: PipelineData) -> str:
    """The composer's user prompt (template, recipient, placeholders, research)."""
    placeholders = ", ".join(data.placeholders) or "(none)"
    return (
        f"Recipient: {data.recipient_name}\nTheir research interest: {data.recipient_interest}\n"
        f"Template type: {data.template_type}\nPlaceholders to fill: {placeholders}\n\n"
        f"<template>\n{data.email_template}\n</template>\n\n{_research_block(data)}"
    )


def _fill_value(placeholder: str, data: PipelineData) -> str:
    key = re.sub(r"[^a-z]+", " ", placeholder.lower())  # one class run per gap: linear
    name = plain_name(data.recipient_name)
    if any(word in key for word in ("name", "professor", "recipient", "dr ")):
        return name.split()[-1] if "last" in key or "surname" in key else name
    if any(word in key for word in ("paper", "publication", "article", "book", "title")):
        if data.arxiv_papers:
            return data.arxiv_papers[0].title
        titles = [c.get("title") for c in data.scraping_metadata.get("citations", [])]
        return next((t for t in titles if t), f"your work on {data.recipient_interest}")
    return data.recipient_interest


def fill_placeholders(text: str, data: PipelineData) -> str:
    """Replace every placeholder still in ``text`` with a rule-based value."""
    for placeholder in data.placeholders:
        text = text.replace(placeholder, _fill_value(placeholder, data))
    return PLACEHOLDER.sub(lambda m: _fill_value(m.group(0), data), text)


def offline_email(data: PipelineData) -> ComposedEmail:
    """The composer's answer without a model: the template with rule-filled placeholders."""
    return ComposedEmail(email=fill_placeholders(data.email_template, data), is_confident=False)


def unfilled(text: str, data: PipelineData) -> list[str]:
    """Placeholders that survive in the email text."""
    left = [p for p in data.placeholders if p in text]
    return left + [m.group(0) for m in PLACEHOLDER.finditer(text) if m.group(0) not in left]


def finish_email(answer: str, data: PipelineData) -> tuple[str, list[str]]:
    """The model's email cleaned (wrappers, machine tells) with every placeholder filled, and
    the placeholders the model had left unfilled."""
    raw = strip_wrappers(answer[:MAX_ANSWER_CHARS])
    # A very short template can consist of nothing but a stock phrase: keep the words then.
    email = remove_machine_tells(raw).strip() or raw
    left = unfilled(email, data)
    if left:
        email = fill_placeholders(email, data)
    return email, left


async def run(data: PipelineData, clients: Clients) -> PipelineData:
    """Compose the email; decide ``is_confident``; every placeholder ends up filled."""
    llm = clients.composer_llm
    response = await llm.generate(
        LLMRequest(
            purpose="email_composer",
            system=SYSTEM,
            prompt=build_prompt(data),
            output=ComposedEmail,
            offline=lambda: offline_email(data),
            max_tokens=2048,
        )
    )
    # In a thread: linear, but an answer of MAX_ANSWER_CHARS costs tens of milliseconds.
    email, left = await asyncio.to_thread(finish_email, response.value.email, data)
    reasons = []
    if llm.model == OFFLINE:
        reasons.append("written offline (no model configured)")
    if not response.value.is_confident:
        reasons.append("model not confident")
    if left:
        reasons.append("placeholders left unfilled by the model: " + ", ".join(left))
    if not data.scraped_content and not data.arxiv_papers:
        reasons.append("no research data found")
    metadata = {
        "composer_model": llm.model,
        "placeholders": data.placeholders,
        "unfilled_placeholders": left,
        "not_confident_reasons": reasons,
    }
    return data.model_copy(
        update={
            "email_message": email.strip(),
            "is_confident": not reasons,
            "model": llm.model,
            "generation_metadata": metadata,
            "usage": [*data.usage, response.usage],
        }
    )
