"""OpenAI-compatible chat completions provider (``openai:<model>``: OpenAI, Fireworks, …).

JSON output is requested with ``response_format={"type": "json_schema", …}``; error mapping,
pacing (per base URL, from the ``x-ratelimit-*`` headers) and the one malformed-answer retry
mirror the Anthropic provider. A 429 whose code is ``insufficient_quota`` is no rate limit: it
pauses the provider.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

import openai
from openai.types.chat import ChatCompletion

from scribe.clients.llm import (
    Answer,
    LLMRequest,
    LLMResponse,
    T,
    ask_with_one_repair,
    parse_retry_after,
)
from scribe.clients.output import parse_output
from scribe.clients.pacing import Cost, Pacer, Refusal, estimate_tokens, send_paced
from scribe.errors import PermanentStepError, TransientStepError

log = logging.getLogger(__name__)


def map_openai_error(exc: openai.APIError) -> TransientStepError | PermanentStepError:
    """Timeouts, connection errors, 408/409/429/5xx are transient; other 4xx permanent."""
    if isinstance(exc, openai.APIConnectionError):
        return TransientStepError(f"LLM request failed: {type(exc).__name__}", provider="openai")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = f"LLM returned HTTP {status}"
        if status in (401, 403):  # the operator's to fix: the hint goes to the log only
            log.warning("OpenAI-compatible endpoint answered HTTP %d: check OPENAI_API_KEY", status)
        if status in (408, 409, 429) or status >= 500:
            return TransientStepError(
                message, retry_after=parse_retry_after(exc.response.headers), provider="openai"
            )
        return PermanentStepError(message)
    return PermanentStepError(f"LLM request failed: {type(exc).__name__}")


def judge_openai_error(exc: Exception) -> Refusal | None:
    """How the pacer treats a failed call (None: not an API error)."""
    if isinstance(exc, openai.APIConnectionError):
        return Refusal(retryable=True)
    if not isinstance(exc, openai.APIStatusError):
        return None
    status, headers = exc.status_code, exc.response.headers
    retry_after = parse_retry_after(headers)
    if status == 429 and getattr(exc, "code", None) == "insufficient_quota":
        return Refusal(headers, pause="quota exhausted (insufficient_quota)")
    if status == 429:
        return Refusal(headers, rate_limited=True, retry_after=retry_after)
    if status in (401, 403):
        return Refusal(headers, pause=f"HTTP {status}", hint="check OPENAI_API_KEY")
    retryable = status in (408, 409) or status >= 500
    return Refusal(headers, retry_after=retry_after, retryable=retryable)


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
        pacer: Pacer | None = None,
    ) -> None:
        self._model = model
        self._max_retries = max_retries
        self._pacer = pacer or Pacer(f"openai:{base_url}")
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
        )

    @property
    def model(self) -> str:
        """``openai:<model>``."""
        return f"openai:{self._model}"

    async def generate(self, request: LLMRequest[T]) -> LLMResponse[T]:
        """Ask the model; retry a malformed answer once, then fail permanently."""

        async def ask() -> Answer[T]:
            completion = await self._call(request)
            usage = completion.usage
            text = completion.choices[0].message.content if completion.choices else None
            return (
                usage.prompt_tokens if usage else 0,
                usage.completion_tokens if usage else 0,
                lambda: parse_output(text or "", request.output),
            )

        return await ask_with_one_repair(request, self.model, ask)

    async def _call(self, request: LLMRequest[T]) -> ChatCompletion:
        schema = request.output.model_json_schema()

        async def send() -> tuple[ChatCompletion, Mapping[str, str], Cost | None]:
            raw = await self._client.chat.completions.with_raw_response.create(
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
        try:
            return await send_paced(
                self._pacer, cost, send, judge_openai_error, max_retries=self._max_retries
            )
        except openai.APIError as exc:
            raise map_openai_error(exc) from exc

    async def aclose(self) -> None:
        """Close the SDK's connections."""
        await self._client.close()
