"""``build_pipeline(clients)``: the four steps, in ``STEP_NAMES`` order, clients bound."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from scribe.steps import (
    STEP_NAMES,
    Pipeline,
    Step,
    StepFunction,
    arxiv_helper,
    email_composer,
    template_parser,
    web_scraper,
)
from scribe.steps.data import PipelineData

if TYPE_CHECKING:
    from scribe.clients import Clients

StepRun = Callable[[PipelineData, "Clients"], Awaitable[PipelineData]]

STEP_FUNCTIONS: dict[str, StepRun] = {
    "template_parser": template_parser.run,
    "web_scraper": web_scraper.run,
    "arxiv_helper": arxiv_helper.run,
    "email_composer": email_composer.run,
}


def _bind(name: str, run: StepRun, clients: Clients) -> StepFunction:
    async def bound(data: PipelineData) -> PipelineData:
        started = time.monotonic()
        result = await run(data, clients)
        timings = {**result.step_timings, name: round(time.monotonic() - started, 3)}
        return result.model_copy(update={"step_timings": timings})

    bound.__name__ = f"{name}_step"
    return bound


def step_providers(clients: Clients) -> dict[str, str | None]:
    """The provider each step needs (None: offline or optional, e.g. arXiv, whose failure never
    fails the email)."""

    def llm_provider(model: str) -> str | None:
        provider = model.partition(":")[0]
        return provider if provider in ("anthropic", "openai") else None

    return {
        "template_parser": llm_provider(clients.parser_llm.model),
        "web_scraper": "exa" if clients.search is not None else None,
        "arxiv_helper": None,
        "email_composer": llm_provider(clients.composer_llm.model),
    }


def build_pipeline(clients: Clients) -> Pipeline:
    """The ordered steps with ``clients`` bound; each records its wall-clock seconds."""
    providers = step_providers(clients)
    return tuple(
        Step(name, _bind(name, STEP_FUNCTIONS[name], clients), providers[name])
        for name in STEP_NAMES
    )
