"""PipelineData: the one state object the four steps read and extend.

It is JSON-serialisable (pydantic) because the queue checkpoints it after every step and a retry
resumes from the last checkpoint.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TemplateType = Literal["research", "book", "general"]


class Paper(BaseModel):
    """An arXiv paper by the recipient."""

    title: str
    arxiv_url: str
    year: int
    abstract: str = ""
    authors: list[str] = Field(default_factory=list)


class PipelineData(BaseModel):
    """Inputs of one queue item plus the outputs each completed step added."""

    model_config = ConfigDict(extra="forbid")

    # Inputs (from the queue item)
    queue_item_id: uuid.UUID
    user_id: uuid.UUID
    recipient_name: str
    recipient_interest: str
    email_template: str

    # template_parser
    template_type: TemplateType | None = None
    search_terms: list[str] = Field(default_factory=list)
    placeholders: list[str] = Field(default_factory=list)

    # web_scraper
    scraped_content: str = ""
    scraped_urls: list[str] = Field(default_factory=list)
    scraping_metadata: dict[str, Any] = Field(default_factory=dict)

    # arxiv_helper
    arxiv_papers: list[Paper] = Field(default_factory=list)
    arxiv_metadata: dict[str, Any] = Field(default_factory=dict)

    # email_composer
    email_message: str | None = None
    is_confident: bool = False
    model: str | None = None
    generation_metadata: dict[str, Any] = Field(default_factory=dict)

    # Every step: LLM usage records and wall-clock seconds per step
    usage: list[dict[str, Any]] = Field(default_factory=list)
    step_timings: dict[str, float] = Field(default_factory=dict)

    def email_metadata(self) -> dict[str, Any]:
        """The ``emails.metadata`` document (DESIGN §5)."""
        return {
            "search_terms": self.search_terms,
            "template_type": self.template_type,
            "scraped_urls": self.scraped_urls,
            "scraping_metadata": self.scraping_metadata,
            "arxiv_papers": [
                {"title": p.title, "arxiv_url": p.arxiv_url, "year": p.year}
                for p in self.arxiv_papers
            ],
            "arxiv_metadata": self.arxiv_metadata,
            "step_timings": self.step_timings,
            "model": self.model,
            "generation_metadata": self.generation_metadata,
            "usage": self.usage,
        }
