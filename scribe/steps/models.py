"""What the steps read and write: the item's inputs and each step's output (with the documents
inside them that ``emails.metadata`` stores), in pipeline order.

A step module imports its input and output types from here, never from another step.

Step outputs are checkpointed as JSON after each step and read back by a retry, possibly by a
newer or older release during a rolling restart, so they keep fields they do not know
(``extra="allow"``): a field a newer release added survives an older release's resume.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from scribe.domain.papers import Paper

TemplateType = Literal["research", "book", "general"]


class EmailInputs(BaseModel):
    """What one queue item asks for; never part of a checkpoint (the queue row holds it)."""

    model_config = ConfigDict(frozen=True)

    queue_item_id: uuid.UUID
    user_id: uuid.UUID
    recipient_name: str
    recipient_interest: str
    email_template: str


class Record(BaseModel):
    """A checkpointed document: unknown fields are kept, not refused."""

    model_config = ConfigDict(extra="allow")


class Usage(Record):
    """One LLM call: tokens, estimated cost in USD (None for unknown prices), latency."""

    purpose: str
    model: str
    input_tokens: int
    output_tokens: int
    estimated_cost_usd: float | None
    seconds: float


# --- template_parser ---


class ParsedTemplate(Record):
    """template_parser's output: the template's type, up to 3 search terms naming the
    recipient, every placeholder verbatim, and the LLM call it took."""

    template_type: TemplateType
    search_terms: list[str]
    placeholders: list[str]
    usage: list[Usage] = Field(default_factory=list)


# --- web_scraper ---


class Citation(Record):
    """A source the research text came from, and which query found it."""

    url: str
    title: str
    query: str


class PageRecord(Record):
    """How a thin hit's page was read (``method``, ``chars``) or why it was not (``error``,
    ``browser_error``); absent keys are left out of the stored document."""

    url: str
    method: Literal["httpx", "browser"] | None = None
    chars: int | None = None
    error: str | None = None
    browser_error: str | None = None


class ScrapingMetadata(Record):
    """``emails.metadata.scraping_metadata``: ``search`` is ``"skipped"`` (with ``reason``) or
    ``"exa"`` (with the queries, citations, page reads and browser availability)."""

    search: Literal["exa", "skipped"]
    reason: str | None = None
    queries: dict[str, str] | None = None
    citations: list[Citation] | None = None
    pages: list[PageRecord] | None = None
    browser: str | None = None


class WebResearch(Record):
    """web_scraper's output: the research text handed to the composer, its sources, and how it
    was found."""

    scraped_content: str = ""
    scraped_urls: list[str] = Field(default_factory=list)
    scraping_metadata: ScrapingMetadata


# --- arxiv_helper ---


class ArxivMetadata(Record):
    """``emails.metadata.arxiv_metadata``: ``ok`` (with ``found``), ``skipped`` (with
    ``reason``) or ``failed`` (with ``error``); absent keys are left out of the document."""

    status: Literal["ok", "skipped", "failed"]
    found: int | None = None
    reason: str | None = None
    error: str | None = None


class PaperSearch(Record):
    """arxiv_helper's output: the papers chosen for the email and how the search went."""

    arxiv_papers: list[Paper] = Field(default_factory=list)
    arxiv_metadata: ArxivMetadata


# --- email_composer ---


class GenerationMetadata(Record):
    """``emails.metadata.generation_metadata``: why the email is or is not confident."""

    composer_model: str
    placeholders: list[str]
    unfilled_placeholders: list[str]
    not_confident_reasons: list[str]


class WrittenEmail(Record):
    """email_composer's output: the email, whether it is confident, and what wrote it."""

    email_message: str
    is_confident: bool
    model: str
    generation_metadata: GenerationMetadata
    usage: list[Usage] = Field(default_factory=list)
