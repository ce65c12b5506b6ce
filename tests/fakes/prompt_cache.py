"""Anthropic's prompt cache as the fake keeps it, for realistic ``usage`` figures.

A request's prefix runs up to its last ``cache_control`` breakpoint (system blocks, then message
blocks; tools and the output format are part of its identity). When it reaches the model's
minimum it is written on first sight (``cache_creation_input_tokens``) and read by every
identical prefix while it lives (``cache_read_input_tokens``, five minutes from its last use);
``input_tokens`` counts the rest. Tokens are characters / 4, as the fake counts them elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TTL_SECONDS = 300.0
MAX_ENTRIES = 1_000  # distinct live prefixes kept (a test or bench needs a handful)
# Anthropic's documented minimums (first matching model prefix); others cache from 1024.
MIN_TOKENS = (
    ("claude-opus-4-5", 4096),
    ("claude-opus-4-6", 4096),
    ("claude-haiku-4-5", 4096),
    ("claude-3-5-haiku", 2048),
    ("claude-3-haiku", 2048),
)
DEFAULT_MIN_TOKENS = 1024


@dataclass(frozen=True)
class CacheUse:
    """How one request's input tokens divide (the three fields of Anthropic's ``usage``)."""

    input_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    key: str | None = None  # the prefix to remember once the request is admitted

    @property
    def rate_limited_tokens(self) -> int:
        """What the input-tokens-per-minute limit counts: cache reads do not."""
        return self.input_tokens + self.cache_creation_input_tokens


def _pieces(body: dict[str, Any]) -> list[tuple[str, bool]]:
    """The prompt's texts in order, each with whether a cache breakpoint follows it."""
    pieces: list[tuple[str, bool]] = []
    blocks: list[Any] = []
    system = body.get("system")
    blocks += system if isinstance(system, list) else [system or ""]
    for message in body.get("messages", []):
        content = message.get("content")
        blocks += content if isinstance(content, list) else [content or ""]
    for block in blocks:
        if isinstance(block, dict):
            pieces.append((str(block.get("text", "")), "cache_control" in block))
        else:
            pieces.append((str(block), False))
    return pieces


@dataclass
class PromptCache:
    """The live cached prefixes of the fake Anthropic."""

    clock: Callable[[], float] = time.monotonic
    _expires: dict[str, float] = field(default_factory=dict)

    def measure(self, body: dict[str, Any]) -> CacheUse:
        """How this request's tokens divide, without remembering anything yet."""
        pieces = _pieces(body)
        total = sum(len(text) for text, _ in pieces) // 4
        marked = [index for index, (_, breakpoint) in enumerate(pieces) if breakpoint]
        if not marked:
            return CacheUse(total)
        prefix = [text for text, _ in pieces[: marked[-1] + 1]]
        tokens = sum(len(text) for text in prefix) // 4
        model = str(body.get("model", ""))
        minimum = next((n for name, n in MIN_TOKENS if model.startswith(name)), DEFAULT_MIN_TOKENS)
        if tokens < minimum:
            return CacheUse(total)
        identity = [model, body.get("tools"), body.get("output_config"), prefix]
        key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        if self._expires.get(key, 0.0) > self.clock():
            return CacheUse(total - tokens, cache_read_input_tokens=tokens, key=key)
        return CacheUse(total - tokens, cache_creation_input_tokens=tokens, key=key)

    def remember(self, use: CacheUse) -> None:
        """The request was answered: its prefix lives (again) for ``TTL_SECONDS``."""
        if use.key is None:
            return
        now = self.clock()
        for key in [k for k, expires in self._expires.items() if expires <= now]:
            del self._expires[key]
        if len(self._expires) < MAX_ENTRIES or use.key in self._expires:
            self._expires[use.key] = now + TTL_SECONDS
