"""OpenAI-compatible chat completions provider (``openai:<model>``: OpenAI, Fireworks, …).

JSON output is requested with ``response_format={"type": "json_schema", …}``; error mapping and
the one malformed-answer retry mirror the Anthropic provider.
"""

from __future__ import annotations

import time

import openai
from openai.types.chat import ChatCompletion

from scribe.clients.llm import LLMRequest, LLMResponse, T, parse_retry_after, usage_record
from scribe.clients.output import MalformedOutput, parse_output
from scribe.errors import PermanentStepError, TransientStepError


def map_openai_error(exc: openai.APIError) -> TransientStepError | PermanentStepError:
    """Timeouts, connection errors, 408/409/429/5xx are transient; other 4xx permanent."""
    if isinstance(exc, openai.APIConnectionError):
        return TransientStepError(f"LLM request failed: {type(exc).__name__}")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = f"LLM returned HTTP {status}"
        if status in (408, 409, 429) or status >= 500:
            return TransientStepError(message, retry_after=parse_retry_after(exc.response.headers))
        return PermanentStepError(message)
    return PermanentStepError(f"LLM request failed: {type(exc).__name__}")


class OpenAILLM:
    """``openai.AsyncOpenAI`` against any OpenAI-compatible base URL."""

    def __init__(
        self, model: str, *, api_key: str, base_url: str, timeout: float, max_retries: int
    ) -> None:
        self._model = model
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )

    @property
    def model(self) -> str:
        """``openai:<model>``."""
        return f"openai:{self._model}"

    async def generate(self, request: LLMRequest[T]) -> LLMResponse[T]:
        """Ask the model; retry a malformed answer once, then fail permanently."""
        started = time.monotonic()
        input_tokens = output_tokens = 0
        for attempt in (1, 2):
            completion = await self._call(request)
            if completion.usage is not None:
                input_tokens += completion.usage.prompt_tokens
                output_tokens += completion.usage.completion_tokens
            text = completion.choices[0].message.content if completion.choices else None
            try:
                value = parse_output(text or "", request.output)
            except MalformedOutput as exc:
                if attempt == 2:
                    raise PermanentStepError(str(exc)[:500]) from exc
                continue
            usage = usage_record(
                request.purpose,
                self.model,
                input_tokens,
                output_tokens,
                time.monotonic() - started,
            )
            return LLMResponse(value, usage)
        raise AssertionError("unreachable")

    async def _call(self, request: LLMRequest[T]) -> ChatCompletion:
        schema = request.output.model_json_schema()
        try:
            return await self._client.chat.completions.create(
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
        except openai.APIError as exc:
            raise map_openai_error(exc) from exc

    async def aclose(self) -> None:
        """Close the SDK's connections."""
        await self._client.close()
