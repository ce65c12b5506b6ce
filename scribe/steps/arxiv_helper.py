"""Step 3, arxiv_helper: the recipient's arXiv papers, for research templates only.

Reads the inputs and the ``ParsedTemplate``; needs the arXiv client; adds a ``PaperSearch``.
A failure here never fails the email: it is recorded and the email goes on without papers.
"""

from __future__ import annotations

import asyncio
import logging

from scribe.clients.papers import ArxivPapers
from scribe.domain.names import plain_name
from scribe.domain.papers import select_papers
from scribe.errors import ExternalServiceError
from scribe.providers.account import Timer
from scribe.steps.models import ArxivMetadata, EmailInputs, PaperSearch, ParsedTemplate

log = logging.getLogger(__name__)

# Includes waiting for the process-wide arXiv pacing (one request per 3 s).
ARXIV_DEADLINE_SECONDS = 60.0


async def run(
    inputs: EmailInputs, template: ParsedTemplate, papers: ArxivPapers, timer: Timer | None = None
) -> PaperSearch:
    """Find up to 5 recent papers by the recipient (research templates only); ``timer``: the
    step's, held while waiting for arXiv's pacing."""
    if template.template_type != "research":
        skipped = ArxivMetadata(status="skipped", reason="not a research template")
        return PaperSearch(arxiv_metadata=skipped)
    author = plain_name(inputs.recipient_name)
    try:
        async with asyncio.timeout(ARXIV_DEADLINE_SECONDS):
            found = await papers.papers_by(author, timer)
    except (ExternalServiceError, TimeoutError) as exc:
        log.warning("arXiv lookup failed for item %s: %s", inputs.queue_item_id, exc)
        error = str(exc) or "arXiv lookup timed out"
        return PaperSearch(arxiv_metadata=ArxivMetadata(status="failed", error=error))
    chosen = select_papers(author, inputs.recipient_interest, found)
    return PaperSearch(
        arxiv_papers=chosen, arxiv_metadata=ArxivMetadata(status="ok", found=len(chosen))
    )
