"""Turning a model's raw text into a validated answer (shared by the LLM providers)."""

from __future__ import annotations

import re
from typing import TypeVar

from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)

_REASONING = re.compile(
    r"<(think|thinking|reasoning|scratchpad)>.*?</\1>", re.IGNORECASE | re.DOTALL
)
_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?```\s*$", re.DOTALL)


def strip_wrappers(text: str) -> str:
    """Remove reasoning tags (``<think>…</think>`` and friends) and one enclosing code fence."""
    text = _REASONING.sub("", text).strip()
    fenced = _FENCE.match(text)
    return fenced.group(1).strip() if fenced else text


class MalformedOutput(ValueError):
    """The model's answer did not match the requested schema."""


def parse_output(text: str, output: type[T]) -> T:
    """Validate a model's JSON answer (fences and reasoning stripped); MalformedOutput if not."""
    cleaned = strip_wrappers(text)
    start, end = cleaned.find("{"), cleaned.rfind("}")
    if start > 0 and end > start:  # prose around the object
        cleaned = cleaned[start : end + 1]
    try:
        return output.model_validate_json(cleaned)
    except ValidationError as exc:
        raise MalformedOutput(f"model output does not match {output.__name__}: {exc}") from exc
