"""The email job (``queue_items.kind = 'email'``): the queue engine's handler for the pipeline.

Its units are the pipeline's steps; its state is the pipeline's state; its checkpoint is the
pipeline's checkpoint document; its result is the email, written with the generation count in
the engine's completion transaction. Step time is measured by the engine and put into the state
here, so the email's metadata carries the same figures as ``queue_items.step_timings``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from scribe.db import emails
from scribe.db.emails import CompletedEmail
from scribe.db.pool import Connection
from scribe.db.queue_items import DEFAULT_KIND, ClaimedItem
from scribe.domain.text import bounded_text
from scribe.errors import PermanentStepError
from scribe.process import tracing
from scribe.queue.handler import Handler, Progress, Unit
from scribe.queue.waiting import StepTimer
from scribe.settings import Settings
from scribe.steps import Step
from scribe.steps.pipeline import (
    EmailInputs,
    EmailState,
    dump_checkpoint,
    email_result,
    llm_usage,
    load_checkpoint,
)

EMAIL_KIND = DEFAULT_KIND  # every row enqueued without a kind is an email job


class EmailHandler:
    """Runs the email pipeline's steps as the engine's units."""

    def __init__(self, pipeline: Sequence[Step], *, max_email_chars: int) -> None:
        if not pipeline:
            raise ValueError("the pipeline has no steps")
        self._steps = {step.name: step for step in pipeline}
        self._units = tuple(Unit(step.name, step.provider) for step in pipeline)
        self._max_email_chars = max_email_chars

    def units(self) -> Sequence[Unit]:
        """The pipeline's steps, in order."""
        return self._units

    def resume(self, item: ClaimedItem) -> tuple[EmailState, Progress]:
        """The pipeline state of the item's checkpoint (or a fresh one) and its progress."""
        state, completed = load_checkpoint(item.checkpoint, _inputs(item))
        return state, Progress(list(completed), dict(state.step_timings))

    async def run_unit(self, unit: Unit, state: EmailState, timer: StepTimer) -> EmailState:
        """Run the step named ``unit`` (``timer``: its timeout, passed to its provider calls)."""
        with tracing.span("pipeline step {step}", step=unit.name) as span:
            result = await self._steps[unit.name].run(state, timer)
            # LLM calls this step made: tokens and estimated cost, for the trace.
            span.set_attribute("llm_usage", llm_usage(result, unit.name))
        return result

    def checkpoint(self, state: EmailState, progress: Progress) -> dict[str, Any]:
        """The pipeline's checkpoint document, with the engine's step timings."""
        return dump_checkpoint(_timed(state, progress), progress.completed)

    async def complete(
        self, conn: Connection, item: ClaimedItem, state: EmailState, progress: Progress
    ) -> None:
        """Store the email (bounded), linked from the item and counted for its user."""
        result = email_result(_timed(state, progress))
        if result is None:
            raise PermanentStepError("The pipeline wrote no email.")
        email = CompletedEmail(
            email_id=uuid.uuid4(),
            email_message=bounded_text(result.message, self._max_email_chars),
            template_type=result.template_type,
            metadata=result.metadata,
            is_confident=result.is_confident,
        )
        await emails.insert_completed(
            conn,
            email,
            queue_item_id=item.id,
            user_id=item.user_id,
            recipient_name=item.recipient_name,
            recipient_interest=item.recipient_interest,
        )


def email_handlers(pipeline: Sequence[Step], settings: Settings) -> dict[str, Handler[Any]]:
    """The handlers of a consumer that runs email jobs with ``pipeline``."""
    return {EMAIL_KIND: EmailHandler(pipeline, max_email_chars=settings.scribe_max_email_chars)}


def _inputs(item: ClaimedItem) -> EmailInputs:
    return EmailInputs(
        queue_item_id=item.id,
        user_id=item.user_id,
        recipient_name=item.recipient_name,
        recipient_interest=item.recipient_interest,
        email_template=item.email_template,
    )


def _timed(state: EmailState, progress: Progress) -> EmailState:
    return state.model_copy(update={"step_timings": dict(progress.timings)})
