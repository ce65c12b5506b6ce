"""``EmailState``: one item's inputs plus one optional output per step.

Each step reads the inputs and the outputs of the steps before it and adds its own; the field of
a step's output is named after the step. The state is what a checkpoint saves (without the
inputs: the queue row holds them) and what a retry resumes from.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from scribe.errors import PermanentStepError
from scribe.steps.email_composer import Brief
from scribe.steps.models import EmailInputs, PaperSearch, ParsedTemplate, WebResearch, WrittenEmail

T = TypeVar("T")


def _required(output: T | None, step: str) -> T:
    if output is None:  # the pipeline runs in order, so only a bug gets here
        raise PermanentStepError(f"{step} has not run")
    return output


class EmailState(BaseModel):
    """The inputs, each completed step's output, and each step's seconds (as the engine
    measured them)."""

    model_config = ConfigDict(frozen=True)

    inputs: EmailInputs
    template_parser: ParsedTemplate | None = None
    web_scraper: WebResearch | None = None
    arxiv_helper: PaperSearch | None = None
    email_composer: WrittenEmail | None = None
    step_timings: dict[str, float] = Field(default_factory=dict)

    def parsed(self) -> ParsedTemplate:
        """The template_parser's output (PermanentStepError before it ran)."""
        return _required(self.template_parser, "template_parser")

    def brief(self) -> Brief:
        """What the composer reads (PermanentStepError before the earlier steps ran)."""
        return Brief(
            self.inputs,
            self.parsed(),
            _required(self.web_scraper, "web_scraper"),
            _required(self.arxiv_helper, "arxiv_helper"),
        )
