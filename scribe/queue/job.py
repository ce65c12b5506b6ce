"""One claimed item while a consumer runs it, and the ways a run can end."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field

from scribe.db.queue_items import ClaimedItem, Fence


class StopReason(enum.IntEnum):
    """Why a running job must stop early; a higher value wins when several arrive."""

    SHUTDOWN = 1  # release the item to pending without charging the attempt
    CANCELLED = 2  # the user cancelled: end cancelled, no result
    LEASE_LOST = 3  # someone else owns the item now: write nothing at all


class Outcome(enum.Enum):
    """How a job ended, from this process's point of view."""

    COMPLETED = "completed"
    RETRYING = "retrying"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RELEASED = "released"
    LOST = "lost"  # fenced out (or the database stayed away): nothing more was written


@dataclass(eq=False)
class Job:
    """A running item: its claim, its task, and whether it was asked to stop."""

    item: ClaimedItem
    fence: Fence
    task: asyncio.Task[Outcome] | None = None
    stop_reason: StopReason | None = None
    in_step: bool = field(default=False)

    def request_stop(self, reason: StopReason) -> None:
        """Ask the job to stop: at once if a step is running (its task is cancelled), else at
        the next step boundary."""
        if self.stop_reason is not None and self.stop_reason >= reason:
            return
        self.stop_reason = reason
        if self.in_step and self.task is not None and not self.task.done():
            self.task.cancel()
