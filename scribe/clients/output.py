"""Turning a model's raw text into a validated answer (shared by the LLM providers).

Model answers are untrusted and unbounded, so the helpers here are linear in their input: tags
and fences are found with literal searches that move forward only, never a lazy ``.*?`` whose
retries from every start position made an unclosed tag or fence quadratic.
"""

from __future__ import annotations

import re
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from scribe.errors import MalformedOutput

T = TypeVar("T", bound=BaseModel)

# Literal alternatives with no quantifier: a search costs a bounded number of steps per position.
_REASONING_OPEN = re.compile(r"<(think|thinking|reasoning|scratchpad)>", re.IGNORECASE)
_REASONING_CLOSE = {
    tag: re.compile(f"</{tag}>", re.IGNORECASE)
    for tag in ("think", "thinking", "reasoning", "scratchpad")
}
_FENCE = "```"
_FENCE_LANGUAGE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def strip_reasoning(text: str) -> str:
    """``text`` without ``<think>…</think>`` (and friends) blocks; an unclosed tag is kept."""
    parts: list[str] = []
    position = 0
    unclosed: set[str] = set()  # a tag with no closing tag after one opening has none later
    while (opening := _REASONING_OPEN.search(text, position)) is not None:
        tag = opening.group(1).lower()
        closing = None if tag in unclosed else _REASONING_CLOSE[tag].search(text, opening.end())
        if closing is None:
            unclosed.add(tag)
            parts.append(text[position : opening.end()])
        else:
            parts.append(text[position : opening.start()])
        position = opening.end() if closing is None else closing.end()
    parts.append(text[position:])
    return "".join(parts)


def strip_fence(text: str) -> str:
    """The inside of one code fence enclosing all of ``text`` (stripped), else ``text``."""
    if len(text) < 2 * len(_FENCE) or not (text.startswith(_FENCE) and text.endswith(_FENCE)):
        return text
    start = len(_FENCE)
    while start < len(text) and text[start] in _FENCE_LANGUAGE:
        start += 1
    return text[start : len(text) - len(_FENCE)].strip()


def strip_wrappers(text: str) -> str:
    """Remove reasoning tags (``<think>…</think>`` and friends) and one enclosing code fence."""
    return strip_fence(strip_reasoning(text).strip())


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
