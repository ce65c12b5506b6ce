"""Anthropic Messages API provider (``anthropic:<model>``) with structured output.

Structured output is requested with ``output_config.format`` (a JSON schema); ``tool`` mode forces
a single tool call instead, for gateways that do not support structured outputs. The SDK retries
429/5xx/529 itself (``max_retries``, honouring ``retry-after-ms``); what is left is mapped to the
step errors here. A malformed answer is asked again once at once; a second malformed answer is
permanent (the same prompt keeps producing it, so a queue retry would only spend money).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import anthropic
from anthropic.types import Message

from scribe.clients.llm import (
    Answer,
    LLMRequest,
    LLMResponse,
    T,
    ask_with_one_repair,
    parse_retry_after,
)
from scribe.clients.output import MalformedOutput, parse_output
from scribe.errors import PermanentStepError, TransientStepError

log = logging.getLogger(__name__)

StructuredMode = Literal["json_schema", "tool"]
_TOOL = "respond"


def map_anthropic_error(exc: anthropic.APIError) -> TransientStepError | PermanentStepError:
    """Timeouts, connection errors, 408/409/429/5xx/529 are transient; other 4xx permanent."""
    if isinstance(exc, anthropic.APIConnectionError):  # includes APITimeoutError
        return TransientStepError(f"LLM request failed: {type(exc).__name__}", provider="anthropic")
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        retry_after = parse_retry_after(exc.response.headers)
        message = f"LLM returned HTTP {status}: {(exc.api_message or '')[:300]}"
        if status in (401, 403):  # the operator's to fix: the hint goes to the log only
            log.warning("Anthropic answered HTTP %d (%s): check ANTHROPIC_API_KEY", status, message)
            return PermanentStepError(f"LLM returned HTTP {status}")
        if status in (408, 409, 429) or status >= 500:
            return TransientStepError(message, retry_after=retry_after, provider="anthropic")
        return PermanentStepError(message)
    return PermanentStepError(f"LLM request failed: {type(exc).__name__}")


class AnthropicLLM:
    """``anthropic.AsyncAnthropic`` behind the LLM interface."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None,
        timeout: float,
        max_retries: int,
        mode: StructuredMode = "json_schema",
    ) -> None:
        self._model = model
        self._mode = mode
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )

    @property
    def model(self) -> str:
        """``anthropic:<model>``."""
        return f"anthropic:{self._model}"

    async def generate(self, request: LLMRequest[T]) -> LLMResponse[T]:
        """Ask the model; retry a malformed answer once, then fail permanently."""

        async def ask() -> Answer[T]:
            message = await self._call(request)
            usage = message.usage
            return (
                usage.input_tokens,
                usage.output_tokens,
                lambda: self._parse(message, request.output),
            )

        return await ask_with_one_repair(request, self.model, ask)

    async def _call(self, request: LLMRequest[T]) -> Message:
        schema = anthropic.transform_schema(request.output)
        extra: dict[str, Any] = {}
        if self._mode == "tool":
            extra["tools"] = [
                {"name": _TOOL, "description": "Return the answer.", "input_schema": schema}
            ]
            extra["tool_choice"] = {"type": "tool", "name": _TOOL}
        else:
            extra["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        try:
            message: Message = await self._client.messages.create(
                model=self._model,
                max_tokens=request.max_tokens,
                system=request.system,
                messages=[{"role": "user", "content": request.prompt}],
                **extra,
            )
        except anthropic.APIError as exc:
            raise map_anthropic_error(exc) from exc
        return message

    @staticmethod
    def _parse(message: Message, output: type[T]) -> T:
        for block in message.content:
            if block.type == "tool_use" and block.name == _TOOL:
                try:
                    return output.model_validate(block.input)
                except ValueError as exc:
                    raise MalformedOutput(str(exc)) from exc
        text = "".join(block.text for block in message.content if block.type == "text")
        if not text.strip():
            raise MalformedOutput(f"empty answer (stop_reason={message.stop_reason})")
        return parse_output(text, output)

    async def aclose(self) -> None:
        """Close the SDK's connections."""
        await self._client.close()
