"""Anthropic prompt caching through the real SDK and the wire fake: a fixed system prompt that
meets the model's minimum is sent as a cache breakpoint, the fake reads a repeated prefix from
its cache, and the usage record counts and prices cache writes and reads."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel

from scribe.clients.anthropic_llm import AnthropicLLM, min_cacheable_tokens
from scribe.clients.llm import PRICES, LLMRequest
from tests.fakes.services import FakeServices

LONG_SYSTEM = "Keep every word of the template outside its placeholders. " * 80  # ~1,200 tokens
SHORT_SYSTEM = "Fill the placeholders."


class Draft(BaseModel):
    """An output the fake answers with its generic text."""

    template: str


def _request(system: str, prompt: str) -> LLMRequest[Draft]:
    return LLMRequest(
        purpose="email_composer",
        system=system,
        prompt=prompt,
        output=Draft,
        offline=lambda: Draft(template=""),
    )


@pytest.fixture
async def sonnet(fakes: FakeServices) -> AsyncIterator[AnthropicLLM]:
    llm = AnthropicLLM(
        "claude-sonnet-4-6",
        api_key="sk-ant-test",
        base_url=f"{fakes.base_url}/anthropic",
        timeout=5.0,
        max_retries=0,
    )
    yield llm
    await llm.aclose()


def test_minimums_follow_the_documented_model_classes() -> None:
    assert min_cacheable_tokens("claude-sonnet-4-6") == 1024
    assert min_cacheable_tokens("claude-opus-4-1") == 1024
    assert min_cacheable_tokens("claude-opus-4-6") == 4096
    assert min_cacheable_tokens("claude-haiku-4-5") == 4096
    assert min_cacheable_tokens("claude-3-5-haiku-latest") == 2048
    assert min_cacheable_tokens("some-new-model") == 4096


async def test_a_long_fixed_system_prompt_is_a_cache_breakpoint_read_by_the_next_email(
    sonnet: AnthropicLLM, fakes: FakeServices
) -> None:
    first = await sonnet.generate(_request(LONG_SYSTEM, "Recipient: Grace Hopper"))
    second = await sonnet.generate(_request(LONG_SYSTEM, "Recipient: Alan Turing"))

    for recorded in fakes.of("anthropic"):
        assert recorded.body["system"] == [
            {"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}
        ]
        assert recorded.body["messages"][0]["content"].startswith("Recipient: ")
        assert "anthropic-beta" not in recorded.headers  # generally available: no beta flag
    prefix = len(LONG_SYSTEM) // 4
    assert first.usage["cache_creation_input_tokens"] == prefix
    assert first.usage["cache_read_input_tokens"] == 0
    assert second.usage["cache_creation_input_tokens"] == 0
    assert second.usage["cache_read_input_tokens"] == prefix
    assert second.usage["input_tokens"] == len("Recipient: Alan Turing") // 4

    price_in, price_out = PRICES["claude-sonnet-4-6"]
    read_cost = (
        second.usage["input_tokens"] * price_in
        + prefix * price_in * 0.1
        + second.usage["output_tokens"] * price_out
    ) / 1_000_000
    write_cost = (
        first.usage["input_tokens"] * price_in
        + prefix * price_in * 1.25
        + first.usage["output_tokens"] * price_out
    ) / 1_000_000
    assert second.usage["estimated_cost_usd"] == pytest.approx(read_cost, abs=1e-6)
    assert first.usage["estimated_cost_usd"] == pytest.approx(write_cost, abs=1e-6)
    assert second.usage["estimated_cost_usd"] < first.usage["estimated_cost_usd"] / 2


async def test_a_prefix_below_the_minimum_is_sent_unmarked_and_priced_as_input(
    sonnet: AnthropicLLM, fakes: FakeServices
) -> None:
    for name in ("Grace Hopper", "Alan Turing"):
        answer = await sonnet.generate(_request(SHORT_SYSTEM, f"Recipient: {name}"))
        assert answer.usage["cache_read_input_tokens"] == 0
        assert answer.usage["cache_creation_input_tokens"] == 0
    assert [r.body["system"] for r in fakes.of("anthropic")] == [SHORT_SYSTEM] * 2


async def test_haiku_does_not_mark_a_prefix_under_its_higher_minimum(fakes: FakeServices) -> None:
    haiku = AnthropicLLM(
        "claude-haiku-4-5",
        api_key="sk-ant-test",
        base_url=f"{fakes.base_url}/anthropic",
        timeout=5.0,
        max_retries=0,
    )
    try:
        await haiku.generate(_request(LONG_SYSTEM, "Template: Dear {{name}}"))
    finally:
        await haiku.aclose()
    [recorded] = fakes.of("anthropic")
    assert recorded.body["system"] == LONG_SYSTEM
