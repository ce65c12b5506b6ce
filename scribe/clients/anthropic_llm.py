"""Anthropic Messages API provider (``anthropic:<model>``) with structured output.

Structured output is requested with ``output_config.format`` (a JSON schema); ``tool`` mode forces
a single tool call instead, for gateways that do not support structured outputs. Every call goes
through the account's pacer (scribe.clients.pacing): the SDK's own retries are off; 429s are
waited out as the rate-limit headers say, 5xx/529/timeouts retried ``max_retries`` times, and a
bad key or an exhausted credit balance pauses the account (the one table:
``scribe.clients.llm.judge_llm_failure``). A malformed answer is asked again once at once; a
second malformed answer is permanent (the same prompt keeps producing it, so a queue retry
would only spend money). A system prompt long enough for the model's prompt cache is marked as a
cache breakpoint (``system_blocks``), and the usage counts cache writes and reads.

A call is one POST to ``/v1/messages`` over httpx (``anthropic-version`` 2023-06-01), its answer
read as JSON: the ``anthropic`` SDK would cost the service about 52 MiB (PSS) for it, and every
start 1.4 s if imported there. The SDK's schema transformation for structured outputs is
``strict_schema`` here.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import httpx
from pydantic import BaseModel

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
DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
USER_AGENT = "scribe (anthropic /v1/messages over httpx)"
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


def system_blocks(system: str, prefix_tokens: int, model: str) -> str | list[dict[str, Any]]:
    """The system prompt, marked as a prompt-cache breakpoint when the prefix it ends (the
    system prompt, with the tool definition in tool mode: nothing of one item is in them)
    meets the model's minimum. Every request with the same prefix then reads it from the cache
    (0.1x the input price, and not counted against the input-tokens-per-minute limit)."""
    if prefix_tokens < min_cacheable_tokens(model):
        return system
    return [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]


# String formats structured outputs accept; others move into the description (as the SDK does).
SUPPORTED_STRING_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)


@cache
def model_schema(output: type[BaseModel]) -> dict[str, Any]:
    """``output``'s JSON schema as structured outputs accept it (built once per model)."""
    return strict_schema(output.model_json_schema())


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema in the subset structured outputs accept (the SDK's ``transform_schema``):
    every object closed (``additionalProperties: false``), ``$defs``/``$ref``, unions, enums and
    consts kept, and any other keyword (a length, a pattern, a bound) moved into the description,
    where the model may still follow it."""
    rest = dict(schema)
    strict: dict[str, Any] = {}
    if (defs := rest.pop("$defs", None)) is not None:
        strict["$defs"] = {name: strict_schema(sub) for name, sub in defs.items()}
    if (ref := rest.pop("$ref", None)) is not None:
        strict["$ref"] = ref
        if (description := rest.pop("description", None)) is not None:
            strict["description"] = description
        return strict
    kind = _strict_shape(rest, strict)
    for key in ("description", "title"):
        if (value := rest.pop(key, None)) is not None:
            strict[key] = value
    _strict_kind(kind, rest, strict)
    if rest:  # what structured outputs do not enforce, said in words
        said = "{" + ", ".join(f"{key}: {value}" for key, value in rest.items()) + "}"
        described = strict.get("description")
        strict["description"] = f"{described}\n\n{said}" if described is not None else said
    return strict


def _strict_shape(rest: dict[str, Any], strict: dict[str, Any]) -> str | None:
    """The literal, union or type of ``rest`` into ``strict``; the type left to detail."""
    kind: str | None = rest.pop("type", None)
    any_of, one_of, all_of = (rest.pop(key, None) for key in ("anyOf", "oneOf", "allOf"))
    enum = rest.get("enum")
    if isinstance(enum, list) and enum and all(_primitive(value) for value in enum):
        strict["enum"] = list(rest.pop("enum"))
    if "const" in rest and _primitive(rest["const"]):
        strict["const"] = rest.pop("const")
    literal = "enum" in strict or "const" in strict
    if literal:
        kind = None
    if isinstance(any_of, list):
        strict["anyOf"] = [strict_schema(variant) for variant in any_of]
    elif isinstance(one_of, list):
        strict["anyOf"] = [strict_schema(variant) for variant in one_of]
    elif isinstance(all_of, list):
        strict["allOf"] = [strict_schema(variant) for variant in all_of]
    elif not literal:
        if kind is None:
            raise ValueError("a schema needs a type, a union, a const or an enum")
        strict["type"] = kind
    return kind


def _strict_kind(kind: str | None, rest: dict[str, Any], strict: dict[str, Any]) -> None:
    """What an object, a string or an array keeps of ``rest`` in ``strict``."""
    if kind == "object":
        properties = rest.pop("properties", {})
        strict["properties"] = {key: strict_schema(sub) for key, sub in properties.items()}
        rest.pop("additionalProperties", None)
        strict["additionalProperties"] = False
        if (required := rest.pop("required", None)) is not None:
            strict["required"] = list(required)
    elif kind == "string" and rest.get("format") in SUPPORTED_STRING_FORMATS:
        strict["format"] = rest.pop("format")
    elif kind == "array":
        if (items := rest.pop("items", None)) is not None:
            strict["items"] = strict_schema(items)
        if rest.get("minItems") in (0, 1):
            strict["minItems"] = rest.pop("minItems")


def _primitive(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


@dataclass(frozen=True, slots=True)
class Message:
    """The parts of a Messages API answer Scribe reads."""

    content: list[dict[str, Any]]
    stop_reason: str | None
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int


def read_message(response: httpx.Response) -> Message:
    """The answer of a 200 (MalformedOutput when it is not a message)."""
    try:
        answer = response.json()
    except ValueError as exc:
        raise MalformedOutput("the answer is not JSON") from exc
    content = answer.get("content") if isinstance(answer, dict) else None
    usage = answer.get("usage") if isinstance(answer, dict) else None
    if not isinstance(content, list) or not isinstance(usage, dict):
        raise MalformedOutput("the answer is not a message")

    def count(key: str) -> int:
        value = usage.get(key)
        return value if isinstance(value, int) else 0

    return Message(
        [block for block in content if isinstance(block, dict)],
        answer.get("stop_reason"),
        count("input_tokens"),
        count("output_tokens"),
        count("cache_creation_input_tokens"),
        count("cache_read_input_tokens"),
    )


def _api_message(response: httpx.Response) -> str:
    """The ``error.message`` of an error answer ("" when there is none)."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else ""


def judge_anthropic_error(exc: Exception) -> Refusal | None:
    """Anthropic's failures in the LLM error table (None: not a transport or HTTP failure). A
    low credit balance is a 400 whose only mark is its message: it pauses the account."""
    if isinstance(exc, httpx.TransportError):  # timeouts included
        return judge_llm_failure(None, None, detail=type(exc).__name__, key_setting=KEY_SETTING)
    if not isinstance(exc, httpx.HTTPStatusError):
        return None
    status = exc.response.status_code
    detail = _api_message(exc.response)
    return judge_llm_failure(
        status,
        exc.response.headers,
        detail=detail,
        key_setting=KEY_SETTING,
        quota_exhausted=status == 400 and "credit balance" in detail.lower(),
    )


class AnthropicLLM:
    """Anthropic's Messages API behind the LLM interface."""

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
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._model = model
        self._mode = mode
        self._max_retries = max_retries
        self._pacer = pacer or Pacer(f"anthropic:{model_family(model)}")
        self._http = httpx.AsyncClient(
            base_url=base_url or DEFAULT_BASE_URL,
            headers={
                "x-api-key": api_key,
                "anthropic-version": API_VERSION,
                "User-Agent": USER_AGENT,
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            verify=verify,
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
            return Answer(
                message.input_tokens,
                message.output_tokens,
                lambda: self._parse(message, request.output),
                message.cache_creation_input_tokens,
                message.cache_read_input_tokens,
            )

        return await ask_with_one_repair(request, self.model, ask)

    async def _call(self, request: LLMRequest[T]) -> Message:
        schema = model_schema(request.output)
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
            response = await self._http.post(
                "/v1/messages",
                json={
                    "model": self._model,
                    "max_tokens": request.max_tokens,
                    "system": system,
                    "messages": [{"role": "user", "content": request.prompt}],
                    **extra,
                },
            )
            response.raise_for_status()
            message = read_message(response)
            # What the input-tokens-per-minute limit counts: cache writes do, cache reads not.
            written = message.cache_creation_input_tokens
            usage = Cost(message.input_tokens + written, message.output_tokens)
            return message, response.headers, usage

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
            if block.get("type") == "tool_use" and block.get("name") == _TOOL:
                try:
                    return output.model_validate(block.get("input"))
                except ValueError as exc:
                    raise MalformedOutput(str(exc)) from exc
        text = "".join(
            str(block.get("text") or "") for block in message.content if block.get("type") == "text"
        )
        if not text.strip():
            raise MalformedOutput(f"empty answer (stop_reason={message.stop_reason})")
        return parse_output(text, output)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()
