"""``build_pipeline(clients)``: the four steps, in ``STEP_NAMES`` order, clients bound; and what
the email job handler (scribe/emails/handler.py) needs of the pipeline's state: start it, load and
dump its checkpoint, read the email out of it."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

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

log = logging.getLogger(__name__)

EmailState = PipelineData
CHECKPOINT_VERSION = 1

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


async def run_pipeline(pipeline: Pipeline, data: PipelineData) -> PipelineData:
    """Run every step in order (tests and benchmarks; the queue runs steps with checkpoints)."""
    for step in pipeline:
        data = await step.run(data)
    return data


@dataclass(frozen=True, slots=True)
class EmailInputs:
    """What a queue item gives the pipeline (never stored in its checkpoint)."""

    queue_item_id: uuid.UUID
    user_id: uuid.UUID
    recipient_name: str
    recipient_interest: str
    email_template: str


@dataclass(frozen=True, slots=True)
class EmailResult:
    """What the finished pipeline gives the emails table."""

    message: str
    template_type: str
    metadata: dict[str, Any]  # the emails.metadata document (DESIGN §5)
    is_confident: bool
    step_timings: dict[str, float]


_INPUT_FIELDS = frozenset(EmailInputs.__dataclass_fields__)


def start_state(inputs: EmailInputs) -> EmailState:
    """The state before the first step."""
    return PipelineData(
        queue_item_id=inputs.queue_item_id,
        user_id=inputs.user_id,
        recipient_name=inputs.recipient_name,
        recipient_interest=inputs.recipient_interest,
        email_template=inputs.email_template,
    )


def load_checkpoint(
    doc: dict[str, Any] | None, inputs: EmailInputs
) -> tuple[EmailState, list[str]]:
    """The state a checkpoint holds and the steps it completed; a fresh start when there is none
    or it cannot be read (never raises). The inputs come from the item, not the checkpoint."""
    if not doc:
        return start_state(inputs), []
    try:
        data = {**doc["data"], **{name: getattr(inputs, name) for name in _INPUT_FIELDS}}
        return PipelineData.model_validate(data), list(doc["completed"])
    except (KeyError, TypeError, ValidationError):
        log.warning("item %s: unreadable checkpoint, starting over", inputs.queue_item_id)
        return start_state(inputs), []


def dump_checkpoint(state: EmailState, completed: Sequence[str]) -> dict[str, Any]:
    """The checkpoint document of ``state`` after ``completed`` (without the inputs)."""
    return {
        "version": CHECKPOINT_VERSION,
        "completed": list(completed),
        "data": state.model_dump(mode="json", exclude=set(_INPUT_FIELDS)),
    }


def email_result(state: EmailState) -> EmailResult | None:
    """The email the pipeline wrote, or None when it wrote none."""
    if not state.email_message:
        return None
    return EmailResult(
        message=state.email_message,
        template_type=state.template_type or "general",
        metadata=state.email_metadata(),
        is_confident=state.is_confident,
        step_timings=dict(state.step_timings),
    )
