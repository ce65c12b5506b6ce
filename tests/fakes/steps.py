"""Deterministic test steps with the four real names.

Each item says how its steps behave through its ``recipient_interest``: a JSON ``Behaviour``
(delays, transient or permanent failures, hangs, process crashes). Every step start and end is
appended to a per-process log file in ``log_dir``, so tests (and other processes) can tell which
steps ran, how often and where: "earlier steps were not run again" is asserted from these logs.
"""

from __future__ import annotations

import asyncio
import functools
import os
import uuid
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from scribe.errors import PermanentStepError, TransientStepError, UpstreamUnavailable
from scribe.providers.account import Timer
from scribe.steps import STEP_NAMES, Pipeline, Step
from scribe.steps.models import (
    ArxivMetadata,
    GenerationMetadata,
    PaperSearch,
    ParsedTemplate,
    Record,
    ScrapingMetadata,
    WebResearch,
    WrittenEmail,
)
from scribe.steps.pipeline import EmailState

CRASH_EXIT_CODE = 17
HANG_SECONDS = 3600.0


class Behaviour(BaseModel):
    """How an item's steps behave (all optional; the default is instant success)."""

    model_config = ConfigDict(extra="forbid")

    delay: dict[str, float] = Field(default_factory=dict)
    fail: dict[str, str] = Field(default_factory=dict)  # step -> "transient" | "permanent"
    fail_once: dict[str, str] = Field(default_factory=dict)  # only the step's first run
    fail_message: str = ""
    retry_after: float | None = None
    hang: list[str] = Field(default_factory=list)
    hang_once: list[str] = Field(default_factory=list)
    crash: list[str] = Field(default_factory=list)  # os._exit, every run
    crash_once: list[str] = Field(default_factory=list)
    # While this file exists, these steps fail as their provider being down (overload, 529).
    provider_down_while: str | None = None
    provider_steps: dict[str, str] = Field(default_factory=dict)  # step -> provider

    @classmethod
    def of(cls, data: EmailState) -> Behaviour:
        """The behaviour an item's interest describes (plain text: default behaviour)."""
        text = data.inputs.recipient_interest
        return cls.model_validate_json(text) if text.startswith("{") else cls()


def behaviour(**fields: object) -> str:
    """A recipient_interest that makes the test steps behave so."""
    return Behaviour.model_validate(fields).model_dump_json(exclude_defaults=True)


class StepLog:
    """The step-run log files of a directory (one file per process)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def record(self, item_id: uuid.UUID, step: str, event: str) -> None:
        """Append one line; O_APPEND makes it land whole, even if the process dies next."""
        line = f"{item_id} {step} {event} {os.getpid()}\n".encode()
        fd = os.open(self.directory / f"{os.getpid()}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def entries(self) -> list[tuple[str, str, str, int]]:
        """(item id, step, event, pid) of every line of every process."""
        found = []
        for path in sorted(self.directory.glob("*.log")):
            for line in path.read_text().splitlines():
                item, step, event, pid = line.split()
                found.append((item, step, event, int(pid)))
        return found

    def starts(self, item_id: uuid.UUID | None = None) -> Counter[tuple[str, str]]:
        """How often each (item, step) started."""
        return Counter(
            (item, step)
            for item, step, event, _ in self.entries()
            if event == "start" and (item_id is None or item == str(item_id))
        )

    def pids(self, item_id: uuid.UUID, step: str, event: str = "start") -> list[int]:
        """The processes that logged ``event`` of this step of this item."""
        return [p for i, s, e, p in self.entries() if (i, s, e) == (str(item_id), step, event)]


def output(name: str, recipient: str) -> Record:
    """What the test step ``name`` adds for ``recipient`` (a valid output of the real step)."""
    if name == "template_parser":
        return ParsedTemplate(template_type="general", search_terms=[recipient], placeholders=[])
    if name == "web_scraper":
        skipped = ScrapingMetadata(search="skipped", reason="test step")
        return WebResearch(scraped_content=f"About {recipient}.", scraping_metadata=skipped)
    if name == "arxiv_helper":
        return PaperSearch(arxiv_metadata=ArxivMetadata(status="skipped", reason="test step"))
    reasons: list[str] = []
    metadata = GenerationMetadata(
        composer_model="test",
        placeholders=[],
        unfilled_placeholders=[],
        not_confident_reasons=reasons,
    )
    return WrittenEmail(
        email_message=f"Dear {recipient}, hello.",
        is_confident=True,
        model="test",
        generation_metadata=metadata,
    )


async def _run(
    name: str, log: StepLog | None, data: EmailState, timer: Timer | None = None
) -> EmailState:
    item_id = data.inputs.queue_item_id
    rules = Behaviour.of(data)
    first_run = True
    if log is not None and (rules.fail_once or rules.hang_once or rules.crash_once):
        first_run = log.starts(item_id)[(str(item_id), name)] == 0
    if log is not None:
        log.record(item_id, name, "start")
    if name in rules.crash or (first_run and name in rules.crash_once):
        os._exit(CRASH_EXIT_CODE)
    if name in rules.hang or (first_run and name in rules.hang_once):
        await asyncio.sleep(HANG_SECONDS)
    if name in rules.delay:
        await asyncio.sleep(rules.delay[name])
    provider = rules.provider_steps.get(name)
    if provider and rules.provider_down_while and os.path.exists(rules.provider_down_while):
        raise UpstreamUnavailable(f"LLM returned HTTP 529: Overloaded ({name})", provider=provider)
    kind = rules.fail.get(name) or (rules.fail_once.get(name) if first_run else None)
    if kind is not None:
        message = rules.fail_message or f"{kind} failure in {name}"
        if kind == "permanent":
            raise PermanentStepError(message)
        raise TransientStepError(message, retry_after=rules.retry_after)
    if log is not None:
        log.record(item_id, name, "end")
    return data.model_copy(update={name: output(name, data.inputs.recipient_name)})


def deterministic_pipeline(
    log_dir: Path | None = None, providers: dict[str, str] | None = None
) -> Pipeline:
    """The four steps, behaving as each item's interest says; logged when ``log_dir`` is set;
    ``providers`` names the provider a step needs (for the circuit breaker)."""
    log = StepLog(log_dir) if log_dir is not None else None
    return tuple(
        Step(name, functools.partial(_run, name, log), (providers or {}).get(name))
        for name in STEP_NAMES
    )
