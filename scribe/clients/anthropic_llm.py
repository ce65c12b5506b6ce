"""Anthropic Messages API provider (``anthropic:<model>``) with structured output.

Structured output is requested with ``output_config.format`` (a JSON schema); ``tool`` mode forces
a single tool call instead, for gateways that do not support structured outputs. Every call goes
through the account's pacer (scribe.clients.pacing): the SDK's own retries are off; 429s are
waited out as the rate-limit headers say, 5xx/529/timeouts retried ``max_retries`` times, and a
bad key or an exhausted credit balance pauses the account (the one table:
``scribe.clients.llm.judge_llm_failure``). A malformed answer is asked again once at once; a
second malformed answer is permanent (the same prompt keeps producing it, so a queue retry
would only spend money).
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
    judge_llm_failure,
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

log = logging.getLogger(__name__)

KEY_SETTING = "ANTHROPIC_API_KEY"
StructuredMode = Literal["json_schema", "tool"]
_TOOL = "respond"


def judge_anthropic_error(exc: Exception) -> Refusal | None:
    """Anthropic's failures in the LLM error table (None: not an API error). A low credit
    balance is a 400 whose only mark is its message: it pauses the account."""
    if isinstance(exc, anthropic.APIConnectionError):  # includes APITimeoutError
        return judge_llm_failure(None, None, detail=type(exc).__name__, key_setting=KEY_SETTING)
    if not isinstance(exc, anthropic.APIStatusError):
        return None
    detail = exc.api_message or ""
    return judge_llm_failure(
        exc.status_code,
        exc.response.headers,
        detail=detail,
        key_setting=KEY_SETTING,
        quota_exhausted=exc.status_code == 400 and "credit balance" in detail.lower(),
    )


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

    @property
    def account(self) -> str:
        """The provider account (its pacer) these calls go through."""
        return self._pacer.name

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
        return await send_paced(
            self._pacer, cost, send, judge_anthropic_error, max_retries=self._max_retries
        )

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
