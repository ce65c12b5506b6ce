"""OpenAI-compatible chat completions provider (``openai:<model>``: OpenAI, Fireworks, …).

JSON output is requested with ``response_format={"type": "json_schema", …}``; pacing (per base
URL, from the ``x-ratelimit-*`` headers), the error table (``scribe.clients.llm``) and the one
malformed-answer retry are the Anthropic provider's. A 429 whose code is ``insufficient_quota``
is no rate limit: it pauses the account. The SDK is loaded by the first call, not at start
(``scribe.clients.sdk``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

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
from scribe.providers.account import Account
from scribe.providers.buckets import Cost
from scribe.providers.calls import Refusal, estimate_tokens, send_paced

if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletion

log = logging.getLogger(__name__)

KEY_SETTING = "OPENAI_API_KEY"


def judge_openai_error(exc: Exception) -> Refusal | None:
    """OpenAI-compatible failures in the LLM error table (None: not an API error)."""
    import openai  # loaded: a call failed

    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return judge_llm_failure(None, None, detail=type(exc).__name__, key_setting=KEY_SETTING)
    if not isinstance(exc, openai.APIStatusError):
        return None
    code = getattr(exc, "code", None)
    return judge_llm_failure(
        exc.status_code,
        exc.response.headers,
        detail=str(code or ""),
        key_setting=KEY_SETTING,
        quota_exhausted=exc.status_code == 429 and code == "insufficient_quota",
    )


class OpenAILLM:
    """``openai.AsyncOpenAI`` against any OpenAI-compatible base URL."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str,
        timeout: float,
        max_retries: int,
        pacer: Account | None = None,
    ) -> None:
        self._model = model
        self._max_retries = max_retries
        self._pacer = pacer or Account(f"openai:{base_url}")

        def build() -> AsyncOpenAI:
            from openai import AsyncOpenAI

            return AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)

        self._sdk = LazySdk(build)

    @property
    def model(self) -> str:
        """``openai:<model>``."""
        return f"openai:{self._model}"

    @property
    def account(self) -> str:
        """The provider account (its pacer) these calls go through."""
        return self._pacer.name

    async def generate(self, request: LLMRequest[T]) -> LLMResponse[T]:
        """Ask the model; retry a malformed answer once, then fail permanently."""

        async def ask() -> Answer[T]:
            completion = await self._call(request)
            usage = completion.usage
            text = completion.choices[0].message.content if completion.choices else None
            return Answer(
                usage.prompt_tokens if usage else 0,
                usage.completion_tokens if usage else 0,
                lambda: parse_output(text or "", request.output),
            )

        return await ask_with_one_repair(request, self.model, ask)

    async def _call(self, request: LLMRequest[T]) -> ChatCompletion:
        schema = request.output.model_json_schema()
        client = await self._sdk.get()

        async def send() -> tuple[ChatCompletion, Mapping[str, str], Cost | None]:
            raw = await client.chat.completions.with_raw_response.create(
                model=self._model,
                max_tokens=request.max_tokens,
                messages=[
                    {"role": "system", "content": request.system},
                    {"role": "user", "content": request.prompt},
                ],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": request.output.__name__, "schema": schema},
                },
            )
            completion: ChatCompletion = raw.parse()
            usage = completion.usage
            used = Cost(usage.prompt_tokens, usage.completion_tokens) if usage else None
            return completion, raw.headers, used

        cost = Cost(
            estimate_tokens(request.system, request.prompt, json.dumps(schema)),
            self._pacer.output_estimate(request.max_tokens),
        )
        return await send_paced(
            self._pacer,
            cost,
            send,
            judge_openai_error,
            max_retries=self._max_retries,
            timer=request.timer,
        )

    async def aclose(self) -> None:
        """Close the SDK's connections (if a call opened any)."""
        if (client := self._sdk.built) is not None:
            await client.close()
