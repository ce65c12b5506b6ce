"""The pipeline's step contract.

A step is a name plus ``async (PipelineData) -> PipelineData``; it raises
``TransientStepError`` (retry later) or ``PermanentStepError`` (fail now) for its own failures,
lets the clients' ``UpstreamUnavailable`` / ``UpstreamRejected`` through, and never touches the
database or HTTP requests. The queue's job runner drives the steps in order and checkpoints the
data after each one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from scribe.steps.data import PipelineData

STEP_NAMES = ("template_parser", "web_scraper", "arxiv_helper", "email_composer")

StepFunction = Callable[[PipelineData], Awaitable[PipelineData]]


@dataclass(frozen=True, slots=True)
class Step:
    """One named pipeline step, its dependencies already bound."""

    name: str
    run: StepFunction
    # The external provider the step cannot work without (anthropic, openai, exa), if any: while
    # its circuit breaker is open, items waiting for this step wait instead of running it.
    provider: str | None = None


Pipeline = tuple[Step, ...]
