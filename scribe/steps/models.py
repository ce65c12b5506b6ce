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


SourceKind = Literal["search", "page", "paper"]


class Source(Record):
    """A piece of research an email may draw on: a short id (``W1``… web, ``P1``… papers), its
    kind (a search hit, a page read in full, an arXiv paper), URL, title, the text the composer
    may read (capped), and the search that found it (``background``, ``publications``)."""

    id: str
    kind: SourceKind
    url: str
    title: str
    text: str = ""
    query: str | None = None


class DroppedSource(Record):
    """A search result left out because it is not about the recipient, and why."""

    url: str
    title: str
    reason: str


class WebResearch(Record):
    """web_scraper's output: the sources about the recipient, the results dropped, and how they
    were found. ``scraped_content`` is the research text of releases before sources had ids
    (read from old checkpoints; empty now)."""

    scraped_content: str = ""
    scraped_urls: list[str] = Field(default_factory=list)
    scraping_metadata: ScrapingMetadata
    sources: list[Source] = Field(default_factory=list)
    dropped: list[DroppedSource] = Field(default_factory=list)


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


class SourceRef(Record):
    """A source as ``metadata.grounding`` lists it (its text stays out of the metadata)."""

    id: str
    kind: SourceKind
    url: str
    title: str


class GroundedFill(Record):
    """One placeholder's value, the source ids it cites, and whether every claim in it held."""

    placeholder: str
    value: str
    sources: list[str]
    supported: bool


class UnsupportedClaim(Record):
    """A claim of a value that no source supports: where, what and why."""

    placeholder: str
    text: str
    reason: str


class Repair(Record):
    """The one repair round: the unsupported claims it was asked about and those left after."""

    claims_before: int
    claims_after: int


class Grounding(Record):
    """``emails.metadata.grounding``: the sources the composer read, the results dropped as not
    about the recipient, each fill with its sources, the claims left unsupported, whether the
    template's own words are intact, and the repair round (None: none was needed)."""

    sources: list[SourceRef]
    dropped: list[DroppedSource]
    fills: list[GroundedFill]
    unsupported: list[UnsupportedClaim]
    template_intact: bool
    repair: Repair | None = None


class WrittenEmail(Record):
    """email_composer's output: the email, whether it is confident, what wrote it, and how its
    values are grounded (None in outputs of releases before grounding)."""

    email_message: str
    is_confident: bool
    model: str
    generation_metadata: GenerationMetadata
    usage: list[Usage] = Field(default_factory=list)
    grounding: Grounding | None = None
