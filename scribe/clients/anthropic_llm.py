"""Anthropic Messages API provider (``anthropic:<model>``) with structured output.

Structured output is requested with ``output_config.format`` (a JSON schema); ``tool`` mode forces
a single tool call instead, for gateways that do not support structured outputs. Every call goes
through the provider account (scribe.providers): the SDK's own retries are off; 429s are
waited out as the rate-limit headers say, 5xx/529/timeouts retried ``max_retries`` times, and a
bad key or an exhausted credit balance pauses the account (the one table:
``scribe.clients.llm.judge_llm_failure``). A malformed answer is asked again once at once; a
second malformed answer is permanent (the same prompt keeps producing it, so a queue retry
would only spend money). A system prompt long enough for the model's prompt cache is marked as a
cache breakpoint (``system_blocks``), and the usage counts cache writes and reads.

The SDK is loaded by the first call, not at start (``scribe.clients.sdk``): a module-level import
of ``anthropic`` would cost every start of a configured service its import time and memory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from scribe.clients.llm import (
    Answer,
    LLMRequest,
    LLMResponse,
    T,
    ask_with_one_repair,
    judge_llm_failure,
)
from scribe.clients.output import parse_output
from scribe.clients.sdk import LazySdk
from scribe.errors import MalformedOutput
from scribe.providers.account import Account
from scribe.providers.buckets import Cost
from scribe.providers.calls import Refusal, estimate_tokens, model_family, send_paced

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic
    from anthropic.types import Message, TextBlockParam

log = logging.getLogger(__name__)

KEY_SETTING = "ANTHROPIC_API_KEY"
StructuredMode = Literal["json_schema", "tool"]
_TOOL = "respond"

# Prompt caching: the shortest prefix each model caches (Anthropic's prompt-caching
# documentation; the first matching prefix of the model id wins). A marked prefix below it is
# not cached (nor refused), so an unknown model gets the largest minimum: nothing is marked that
# would not be cached, and no cache write (1.25x the input price) is paid for nothing.
MIN_CACHEABLE_TOKENS: tuple[tuple[str, int], ...] = (
    ("claude-opus-4-5", 4096),
    ("claude-opus-4-6", 4096),
    ("claude-haiku-4-5", 4096),
    ("claude-3-5-haiku", 2048),
    ("claude-3-haiku", 2048),
    ("claude-sonnet-4", 1024),
    ("claude-opus-4", 1024),
    ("claude-3-7-sonnet", 1024),
)
UNKNOWN_MIN_CACHEABLE_TOKENS = 4096


def min_cacheable_tokens(model: str) -> int:
    """The shortest prompt prefix ``model`` caches."""
    return next(
        (tokens for prefix, tokens in MIN_CACHEABLE_TOKENS if model.startswith(prefix)),
        UNKNOWN_MIN_CACHEABLE_TOKENS,
    )


def system_blocks(system: str, prefix_tokens: int, model: str) -> str | list[TextBlockParam]:
    """The system prompt, marked as a prompt-cache breakpoint when the prefix it ends (the
    system prompt, with the tool definition in tool mode: nothing of one item is in them)
    meets the model's minimum. Every request with the same prefix then reads it from the cache
    (0.1x the input price, and not counted against the input-tokens-per-minute limit)."""
    if prefix_tokens < min_cacheable_tokens(model):
        return system
    return [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]


def judge_anthropic_error(exc: Exception) -> Refusal | None:
    """Anthropic's failures in the LLM error table (None: not an API error). A low credit
    balance is a 400 whose only mark is its message: it pauses the account."""
    import anthropic  # loaded: a call failed

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
        pacer: Account | None = None,
    ) -> None:
        self._model = model
        self._mode = mode
        self._max_retries = max_retries
        self._pacer = pacer or Account(f"anthropic:{model_family(model)}")

        def build() -> AsyncAnthropic:
            from anthropic import AsyncAnthropic

            return AsyncAnthropic(
                api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
            )

        self._sdk = LazySdk(build)

    @property
    def model(self) -> str:
        """``anthropic:<model>``."""
        return f"anthropic:{self._model}"

    @property
    def account(self) -> str:
        """The provider account these calls go through."""
        return self._pacer.name

    async def generate(self, request: LLMRequest[T]) -> LLMResponse[T]:
        """Ask the model; retry a malformed answer once, then fail permanently."""

        async def ask() -> Answer[T]:
            message = await self._call(request)
            usage = message.usage
            return Answer(
                usage.input_tokens,
                usage.output_tokens,
                lambda: self._parse(message, request.output),
                usage.cache_creation_input_tokens or 0,
                usage.cache_read_input_tokens or 0,
            )

        return await ask_with_one_repair(request, self.model, ask)

    async def _call(self, request: LLMRequest[T]) -> Message:
        client = await self._sdk.get()
        from anthropic import transform_schema  # loaded by get()

        schema = transform_schema(request.output)
        extra: dict[str, Any] = {}
        prefix = [request.system]
        if self._mode == "tool":
            extra["tools"] = [
                {"name": _TOOL, "description": "Return the answer.", "input_schema": schema}
            ]
            extra["tool_choice"] = {"type": "tool", "name": _TOOL}
            prefix.append(json.dumps(extra["tools"]))
        else:
            extra["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        system = system_blocks(request.system, estimate_tokens(*prefix), self._model)

        async def send() -> tuple[Message, Mapping[str, str], Cost]:
            raw = await client.messages.with_raw_response.create(
                model=self._model,
                max_tokens=request.max_tokens,
                system=system,
                messages=[{"role": "user", "content": request.prompt}],
                **extra,
            )
            message: Message = await raw.parse()
            # What the input-tokens-per-minute limit counts: cache writes do, cache reads not.
            written = message.usage.cache_creation_input_tokens or 0
            usage = Cost(message.usage.input_tokens + written, message.usage.output_tokens)
            return message, raw.headers, usage

        cost = Cost(
            estimate_tokens(request.system, request.prompt, json.dumps(schema)),
            self._pacer.output_estimate(request.max_tokens),
        )
        return await send_paced(
            self._pacer,
            cost,
            send,
            judge_anthropic_error,
            max_retries=self._max_retries,
            timer=request.timer,
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
        """Close the SDK's connections (if a call opened any)."""
        if (client := self._sdk.built) is not None:
            await client.close()
