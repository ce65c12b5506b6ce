"""What every step shares: the item's inputs, the template types, LLM usage records, and the
base of every step output.

Step outputs are checkpointed as JSON after each step and read back by a retry, possibly by a
newer or older release during a rolling restart, so they keep fields they do not know
(``extra="allow"``): a field a newer release added survives an older release's resume.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict

TemplateType = Literal["research", "book", "general"]


class EmailInputs(BaseModel):
    """What one queue item asks for; never part of a checkpoint (the queue row holds it)."""

    model_config = ConfigDict(frozen=True)

    queue_item_id: uuid.UUID
    user_id: uuid.UUID
    recipient_name: str
    recipient_interest: str
    email_template: str


class Record(BaseModel):
    """A checkpointed document: unknown fields are kept, not refused."""

    model_config = ConfigDict(extra="allow")


class Usage(Record):
    """One LLM call: tokens, estimated cost in USD (None for unknown prices), latency."""

    purpose: str
    model: str
    input_tokens: int
    output_tokens: int
    estimated_cost_usd: float | None
    seconds: float
