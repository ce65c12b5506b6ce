"""Anthropic Messages API provider (``anthropic:<model>``) with structured output.

Structured output is requested with ``output_config.format`` (a JSON schema); ``tool`` mode forces
a single tool call instead, for gateways that do not support structured outputs. Every call goes
through the account's pacer (scribe.clients.pacing): the SDK's own retries are off; 429s are
waited out as the rate-limit headers say, 5xx/529/timeouts retried ``max_retries`` times, and a
bad key or an exhausted credit balance pauses the provider. What is left is mapped to the step
errors here. A malformed answer is asked again once at once; a second malformed answer is
permanent (the same prompt keeps producing it, so a queue retry would only spend money).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
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
from scribe.clients.pacing import (
    Cost,
    Pacer,
    Refusal,
    estimate_tokens,
    model_family,
    send_paced,
)
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


def judge_anthropic_error(exc: Exception) -> Refusal | None:
    """How the pacer treats a failed call (None: not an API error)."""
    if isinstance(exc, anthropic.APIConnectionError):
        return Refusal(retryable=True)
    if not isinstance(exc, anthropic.APIStatusError):
        return None
    status, headers = exc.status_code, exc.response.headers
    retry_after = parse_retry_after(headers)
    if status == 429:
        return Refusal(headers, rate_limited=True, retry_after=retry_after)
    if status in (401, 403):
        return Refusal(headers, pause=f"HTTP {status}", hint="check ANTHROPIC_API_KEY")
    if status == 400 and "credit balance" in (exc.api_message or "").lower():
        return Refusal(headers, pause="credit balance too low")
    retryable = status in (408, 409) or status >= 500
    return Refusal(headers, retry_after=retry_after, retryable=retryable)


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
        pacer: Pacer | None = None,
    ) -> None:
        self._model = model
        self._mode = mode
        self._max_retries = max_retries
        self._pacer = pacer or Pacer(f"anthropic:{model_family(model)}")
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
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

        async def send() -> tuple[Message, Mapping[str, str], Cost]:
            raw = await self._client.messages.with_raw_response.create(
                model=self._model,
                max_tokens=request.max_tokens,
                system=request.system,
                messages=[{"role": "user", "content": request.prompt}],
                **extra,
            )
            message: Message = await raw.parse()
            usage = Cost(message.usage.input_tokens, message.usage.output_tokens)
            return message, raw.headers, usage

        cost = Cost(
            estimate_tokens(request.system, request.prompt, json.dumps(schema)),
            self._pacer.output_estimate(request.max_tokens),
        )
        try:
            return await send_paced(
                self._pacer, cost, send, judge_anthropic_error, max_retries=self._max_retries
            )
        except anthropic.APIError as exc:
            raise map_anthropic_error(exc) from exc

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
