"""The offline provider: no model, the request's rule-based answer (DESIGN §5).

Used when no key is configured for a model id (or the id is ``offline``). Metadata records
``model: "offline"`` and the composer marks its emails not confident.
"""

from __future__ import annotations

import asyncio

from scribe.clients.llm import LLMRequest, LLMResponse, T, usage_record

OFFLINE = "offline"


class OfflineLLM:
    """Answers every request with its rule-based fallback."""

    @property
    def model(self) -> str:
        """Always ``offline``."""
        return OFFLINE

    @property
    def account(self) -> None:
        """No provider account: nothing to pace or wait for."""
        return None

    async def generate(self, request: LLMRequest[T]) -> LLMResponse[T]:
        """The request's offline answer, at no cost (computed in a thread: the rules scan the
        whole template, up to 10,000 characters with any number of placeholders)."""
        value = await asyncio.to_thread(request.offline)
        return LLMResponse(value, usage_record(request.purpose, OFFLINE, 0, 0, 0.0))

    async def aclose(self) -> None:
        """Nothing to release."""
