"""What the queue engine runs: a job handler, one per job kind (``queue_items.kind``).

The engine knows claims, leases, attempts, checkpoints, retries and cancel; a handler knows the
work. A job is a fixed, ordered list of units (an email job's are the pipeline's four steps).
The engine runs the units not yet completed one by one, times them, bounds them by the step and
job timeouts, saves the handler's checkpoint (opaque JSON) after each one that has one, and
finally completes the item in one fenced transaction inside which the handler writes its result.
A unit raises ``TransientStepError`` (retry later, or wait for its provider) or
``PermanentStepError`` (fail now); anything else is a bug in the unit, retried and charged like
a transient error.

The state a handler passes between units is opaque to the engine (the ``State`` type variable).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from scribe.db.pool import Connection
from scribe.db.queue_items import ClaimedItem
from scribe.queue.waiting import StepTimer

State = TypeVar("State")


@dataclass(frozen=True, slots=True)
class Unit:
    """One unit of a job: its name (shown as ``current_step``) and the external provider it
    cannot work without, if any (while that provider's account is closed, items about to run
    this unit wait instead: scribe.queue.waiting)."""

    name: str
    provider: str | None = None


@dataclass(slots=True)
class Progress:
    """What the engine knows of a run: the units completed (in order) and their seconds."""

    completed: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class Handler(Protocol[State]):
    """A job kind: its units, and how to resume, run, checkpoint and complete its state."""

    def units(self) -> Sequence[Unit]:
        """The ordered units of every job of this kind (at least one)."""
        ...

    def resume(self, item: ClaimedItem) -> tuple[State, Progress]:
        """The state to continue from and the progress so far: from ``item.checkpoint`` (this
        handler's own document, possibly written by an older release) or fresh. Never raises:
        an unreadable checkpoint means starting over."""
        ...

    async def run_unit(self, unit: Unit, state: State, timer: StepTimer) -> State:
        """Run one unit on ``state``; the new state. ``timer`` is the unit's timeout, to pass
        to the provider accounts it calls (they hold it while waiting for their limits)."""
        ...

    def checkpoint(self, state: State, progress: Progress) -> dict[str, Any] | None:
        """The JSON document to store after a unit (``resume`` reads it back), or None when
        nothing after this unit is worth a write (re-running it costs less): the engine then
        writes nothing until the next checkpoint or the completion, which carries the unit's
        step log entry. A retry after such a unit re-runs it."""
        ...

    async def complete(
        self, conn: Connection, item: ClaimedItem, state: State, progress: Progress
    ) -> None:
        """Write the job's result on ``conn``, inside the engine's fenced completion transaction
        (so the result and the completion commit together, or neither). Raising rolls it all
        back: ``PermanentStepError`` fails the item, anything else is retried as a bug."""
        ...


Handlers = Mapping[str, Handler[Any]]
"""The handler of each job kind a consumer runs."""
