"""Step 3, arxiv_helper: the recipient's arXiv papers, for research templates only.

A failure here never fails the email: it is recorded and the email goes on without papers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from scribe.errors import ExternalServiceError
from scribe.steps.data import PipelineData

if TYPE_CHECKING:
    from scribe.clients import Clients

log = logging.getLogger(__name__)

# Includes waiting for the process-wide arXiv pacing (one request per 3 s).
ARXIV_DEADLINE_SECONDS = 60.0


async def run(data: PipelineData, clients: Clients) -> PipelineData:
    """Find up to 5 recent papers by the recipient (research templates only)."""
    if data.template_type != "research":
        return data.model_copy(
            update={"arxiv_metadata": {"status": "skipped", "reason": "not a research template"}}
        )
    try:
        async with asyncio.timeout(ARXIV_DEADLINE_SECONDS):
            papers = await clients.papers.papers_by(data.recipient_name, data.recipient_interest)
    except (ExternalServiceError, TimeoutError) as exc:
        log.warning("arXiv lookup failed for item %s: %s", data.queue_item_id, exc)
        error = str(exc) or "arXiv lookup timed out"
        return data.model_copy(update={"arxiv_metadata": {"status": "failed", "error": error}})
    return data.model_copy(
        update={"arxiv_papers": papers, "arxiv_metadata": {"status": "ok", "found": len(papers)}}
    )
