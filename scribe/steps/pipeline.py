"""The pipeline: ONE ordered list of steps (``STEPS``), and what the queue calls to run it.

``build_pipeline(clients)`` binds each step to the clients it needs; ``start_state``,
``load_checkpoint`` and ``dump_checkpoint`` move an item's ``EmailState`` in and out of its
checkpoint; ``email_result`` is what the completion transaction writes. Steps are not timed
here: the queue measures each unit and records the seconds in ``EmailState.step_timings``.

Checkpoint format (``CHECKPOINT_VERSION`` 2)::

    {"version": 2, "completed": [step, ...], "outputs": {step: output, ...},
     "step_timings": {step: seconds, ...}}

The inputs (template text included) are not in it: the queue row holds them. Version 1
(``{"completed": [...], "data": <the old 17-field PipelineData>}``, no ``version``) is upgraded.
Unknown fields are kept (outputs) or ignored (top level), never a reason to start over; a step
whose saved output no longer validates is run again, with every step after it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from scribe.providers.account import Timer
from scribe.steps import arxiv_helper, email_composer, template_parser, web_scraper
from scribe.steps.models import (
    EmailInputs,
    PaperSearch,
    ParsedTemplate,
    Record,
    TemplateType,
    WebResearch,
    WrittenEmail,
)
from scribe.steps.state import EmailState
from scribe.steps.web_scraper import WebClients

if TYPE_CHECKING:
    from scribe.clients import Clients

__all__ = [
    "CHECKPOINT_VERSION",
    "STEPS",
    "STEP_NAMES",
    "EmailInputs",
    "EmailResult",
    "EmailState",
    "Pipeline",
    "Step",
    "StepFunction",
    "build_pipeline",
    "dump_checkpoint",
    "email_metadata",
    "email_result",
    "llm_usage",
    "load_checkpoint",
    "start_state",
    "upgrade_v1",
]

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 2


class StepFunction(Protocol):
    """A step over the state; ``timer`` (the step's timeout, from the queue) is passed to the
    provider accounts it calls, which hold it while waiting for their limits."""

    def __call__(self, state: EmailState, timer: Timer | None = None, /) -> Awaitable[EmailState]:
        """The state with the step's output."""
        ...


@dataclass(frozen=True, slots=True)
class Step:
    """One named pipeline step, its clients already bound."""

    name: str
    run: StepFunction
    # The provider account the step cannot work without (``anthropic:claude-sonnet``, ``exa``),
    # if any: while its circuit breaker is open, items waiting for this step wait instead of
    # running it (a step on another account, or another model family, runs on).
    provider: str | None = None


Pipeline = tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class StepSpec:
    """An entry of ``STEPS``: the step's name (its ``EmailState`` field and its name in
    ``current_step``), its output model, how it runs on a state, and the provider it needs."""

    name: str
    output: type[Record]
    run: Callable[[EmailState, Clients, Timer | None], Awaitable[Record]]
    provider: Callable[[Clients], str | None]


def _web_clients(clients: Clients) -> WebClients:
    return WebClients(clients.search, clients.pages, clients.browser)


# Each entry reads what it needs from the state and gets only the clients it needs. arXiv is
# optional (its failure never fails the email), so it has no provider to wait for.
STEPS: tuple[StepSpec, ...] = (
    StepSpec(
        "template_parser",
        ParsedTemplate,
        lambda state, clients, timer: template_parser.run(
            state.inputs, clients.parser_llm, clients.analyses, timer
        ),
        lambda clients: clients.parser_llm.account,
    ),
    StepSpec(
        "web_scraper",
        WebResearch,
        lambda state, clients, timer: web_scraper.run(
            state.inputs, state.parsed(), _web_clients(clients), timer
        ),
        lambda clients: "exa" if clients.search is not None else None,
    ),
    StepSpec(
        "arxiv_helper",
        PaperSearch,
        lambda state, clients, timer: arxiv_helper.run(
            state.inputs, state.parsed(), clients.papers, timer
        ),
        lambda clients: None,
    ),
    StepSpec(
        "email_composer",
        WrittenEmail,
        lambda state, clients, timer: email_composer.run(
            state.brief(), clients.composer_llm, timer
        ),
        lambda clients: clients.composer_llm.account,
    ),
)

STEP_NAMES = tuple(spec.name for spec in STEPS)


def _bind(spec: StepSpec, clients: Clients) -> StepFunction:
    async def run(state: EmailState, timer: Timer | None = None) -> EmailState:
        output = await spec.run(state, clients, timer)
        return state.model_copy(update={spec.name: output})

    run.__name__ = f"{spec.name}_step"
    return run


def build_pipeline(clients: Clients) -> Pipeline:
    """The ordered steps with their clients bound."""
    return tuple(Step(spec.name, _bind(spec, clients), spec.provider(clients)) for spec in STEPS)


def start_state(inputs: EmailInputs) -> EmailState:
    """The state of an item no step has run for."""
    return EmailState(inputs=inputs)


def dump_checkpoint(state: EmailState, completed: list[str]) -> dict[str, Any]:
    """The checkpoint document of ``state`` after the ``completed`` steps (no inputs)."""
    outputs = {}
    for name in completed:
        output = getattr(state, name)
        if output is not None:
            outputs[name] = output.model_dump(mode="json")
    return {
        "version": CHECKPOINT_VERSION,
        "completed": list(completed),
        "outputs": outputs,
        "step_timings": dict(state.step_timings),
    }


# Version 1 kept every step's fields in one flat document; these are each step's.
_V1_FIELDS = {
    "template_parser": ("template_type", "search_terms", "placeholders"),
    "web_scraper": ("scraped_content", "scraped_urls", "scraping_metadata"),
    "arxiv_helper": ("arxiv_papers", "arxiv_metadata"),
    "email_composer": ("email_message", "is_confident", "model", "generation_metadata"),
}
_V1_USAGE = ("template_parser", "email_composer")  # the steps that call an LLM


def upgrade_v1(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A version-1 checkpoint as version 2: the flat data split into each step's output (LLM
    usage records go to the step named by their ``purpose``)."""
    data = doc.get("data")
    data = data if isinstance(data, dict) else {}
    usage = data.get("usage")
    usage = usage if isinstance(usage, list) else []
    outputs: dict[str, Any] = {}
    for name, fields in _V1_FIELDS.items():
        output = {field: data[field] for field in fields if field in data}
        if name in _V1_USAGE:
            output["usage"] = [u for u in usage if isinstance(u, dict) and u.get("purpose") == name]
        outputs[name] = output
    return {
        "version": CHECKPOINT_VERSION,
        "completed": doc.get("completed"),
        "outputs": outputs,
        "step_timings": data.get("step_timings"),
    }


def _timings(value: object, steps: list[str]) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    return {
        name: float(seconds)
        for name, seconds in value.items()
        if name in steps and isinstance(seconds, int | float) and not isinstance(seconds, bool)
    }


def load_checkpoint(
    doc: Mapping[str, Any] | None, inputs: EmailInputs
) -> tuple[EmailState, list[str]]:
    """The state to continue from and the steps already done; never raises.

    A version-1 document is upgraded; a newer one is read as far as it validates. Steps resume
    after the last one, in pipeline order, whose saved output still validates."""
    state = start_state(inputs)
    if not doc or not isinstance(doc, Mapping):
        return state, []
    version = doc.get("version")
    if version in (None, 1):
        doc = upgrade_v1(doc)
    elif version != CHECKPOINT_VERSION:
        log.info(
            "item %s: checkpoint version %r, reading it as %d",
            inputs.queue_item_id,
            version,
            CHECKPOINT_VERSION,
        )
    completed, outputs = doc.get("completed"), doc.get("outputs")
    if not isinstance(completed, list) or not isinstance(outputs, dict):
        log.warning("item %s: checkpoint without steps, starting over", inputs.queue_item_id)
        return state, []
    done: list[str] = []
    for spec in STEPS:
        if spec.name not in completed:
            break
        try:
            output = spec.output.model_validate(outputs[spec.name])
        except (KeyError, ValidationError) as exc:
            log.warning(
                "item %s: saved %s output unreadable, running it again: %s",
                inputs.queue_item_id,
                spec.name,
                str(exc).splitlines()[0],
            )
            break
        state = state.model_copy(update={spec.name: output})
        done.append(spec.name)
    timings = _timings(doc.get("step_timings"), done)
    return state.model_copy(update={"step_timings": timings}), done


@dataclass(frozen=True, slots=True)
class EmailResult:
    """What the completion transaction writes into ``emails``."""

    message: str
    template_type: TemplateType
    metadata: dict[str, Any]  # the emails.metadata document (DESIGN §5)
    is_confident: bool
    step_timings: dict[str, float]


def email_metadata(state: EmailState) -> dict[str, Any]:
    """The ``emails.metadata`` document (DESIGN §5; the frontend validates its shape)."""
    parsed, research, papers, email = (
        state.template_parser,
        state.web_scraper,
        state.arxiv_helper,
        state.email_composer,
    )
    usage = [*(parsed.usage if parsed else []), *(email.usage if email else [])]
    return {
        "search_terms": parsed.search_terms if parsed else [],
        "template_type": parsed.template_type if parsed else None,
        "scraped_urls": research.scraped_urls if research else [],
        "scraping_metadata": (
            research.scraping_metadata.model_dump(mode="json", exclude_none=True)
            if research
            else {}
        ),
        "arxiv_papers": [
            {"title": p.title, "arxiv_url": p.arxiv_url, "year": p.year}
            for p in (papers.arxiv_papers if papers else [])
        ],
        "arxiv_metadata": (
            papers.arxiv_metadata.model_dump(mode="json", exclude_none=True) if papers else {}
        ),
        "step_timings": dict(state.step_timings),
        "model": email.model if email else None,
        "generation_metadata": email.generation_metadata.model_dump(mode="json") if email else {},
        "usage": [u.model_dump(mode="json") for u in usage],
        "grounding": (
            email.grounding.model_dump(mode="json") if email and email.grounding else None
        ),
    }


def email_result(state: EmailState) -> EmailResult | None:
    """The finished email, or None when the composer wrote none."""
    email = state.email_composer
    if email is None or not email.email_message:
        return None
    parsed = state.template_parser
    return EmailResult(
        message=email.email_message,
        template_type=parsed.template_type if parsed else "general",
        metadata=email_metadata(state),
        is_confident=email.is_confident,
        step_timings=dict(state.step_timings),
    )


def llm_usage(state: EmailState, step: str) -> list[dict[str, Any]]:
    """The LLM calls ``step`` made (tokens and estimated cost), for the step's trace span."""
    output = getattr(state, step, None)
    usage = getattr(output, "usage", None) or []
    return [u.model_dump(mode="json") for u in usage]
