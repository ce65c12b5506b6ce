"""The composer's input size with realistic research, against the local fakes.

Research as a real email gets it: 10 Exa hits of about 3,000 characters for each query, five
long arXiv abstracts. Prints, for a research and a general template, the characters of each
composer call (system prompt and user prompt) and the fakes' token estimate (characters / 4).
It uses only the pipeline's public functions, so an older checkout is measured the same way:
``PYTHONPATH=<checkout> .venv/bin/python bench/composer_input.py`` from that checkout.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))

from scribe.steps.pipeline import build_pipeline
from tests.fakes.fixtures import (
    GENERAL_TEMPLATE,
    RESEARCH_TEMPLATE,
    fake_clients,
    fake_settings,
    item,
    run_pipeline,
)
from tests.fakes.server import serve_asgi
from tests.fakes.services import FakeServices

HITS = 10
SENTENCES = 26  # about 2,900 characters a hit


def hit(n: int) -> dict[str, str]:
    """A search result about the recipient, of varied sentences."""
    sentences = [
        f"Jane Roe's group reported result {n}.{k} on quantum widgets and gadget theory in "
        f"{2000 + k}, with co-authors from lab {k}."
        for k in range(SENTENCES)
    ]
    title = f"Jane Roe page {n}"
    return {
        "id": f"h{n}",
        "url": f"https://site{n}.example/roe",
        "title": title,
        "text": " ".join(sentences),
    }


async def main() -> None:
    """Run both templates once and print the composer calls' sizes."""
    logging.disable(logging.WARNING)
    fakes = FakeServices()
    fakes.exa_extra = [hit(n) for n in range(HITS)]
    fakes.arxiv_extra_papers = 5
    print(f"research: {HITS} hits of {len(hit(0)['text'])} characters per query, 5 abstracts")
    async with serve_asgi(fakes.app()) as (url, port):
        fakes.base_url, fakes.port = url, port
        for label, template in (("research", RESEARCH_TEMPLATE), ("general", GENERAL_TEMPLATE)):
            fakes.requests.clear()
            settings = fake_settings(fakes, scribe_arxiv_min_interval_seconds=0)
            async with fake_clients(settings, fakes) as clients:
                await run_pipeline(build_pipeline(clients), item(template))
            calls = fakes.of("anthropic")[1:]  # the first is the parser's
            sizes = [
                len(c.body.get("system") or "") + len(c.body["messages"][0]["content"])
                for c in calls
            ]
            tokens = [size // 4 for size in sizes]
            print(
                f"{label}: composer calls {len(calls)}, input characters {sizes}, tokens {tokens}"
            )


if __name__ == "__main__":
    asyncio.run(main())
