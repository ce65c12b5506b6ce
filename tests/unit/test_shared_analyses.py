"""SharedAnalyses: one computation per key, reused from this process or the shared store; a
store that is down or holds an unreadable analysis costs a model call, never the item."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from scribe.clients.analyses import SharedAnalyses
from scribe.errors import DatabaseUnavailable


class Analysis(BaseModel):
    """A stand-in analysis."""

    kind: str


class MemoryStore:
    """An AnalysisStore in a dict; ``down`` makes it raise as an unreachable database does."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.down = False

    async def load(self, key: str) -> dict[str, Any] | None:
        if self.down:
            raise DatabaseUnavailable("database unavailable: test")
        return self.rows.get(key)

    async def save(self, key: str, analysis: dict[str, Any]) -> None:
        if self.down:
            raise DatabaseUnavailable("database unavailable: test")
        self.rows[key] = analysis


class Model:
    """Counts the analyses it is asked for."""

    def __init__(self) -> None:
        self.calls = 0

    async def analyse(self) -> Analysis:
        self.calls += 1
        return Analysis(kind="general")


async def test_a_second_process_reads_the_stored_analysis() -> None:
    store, model = MemoryStore(), Model()
    first, second = SharedAnalyses(store), SharedAnalyses(store)
    assert await first.get("k", Analysis, model.analyse) == (Analysis(kind="general"), True)
    assert await first.get("k", Analysis, model.analyse) == (Analysis(kind="general"), False)
    assert await second.get("k", Analysis, model.analyse) == (Analysis(kind="general"), False)
    assert model.calls == 1 and store.rows == {"k": {"kind": "general"}}


async def test_an_unreachable_store_costs_a_call_and_the_analysis_is_kept_here() -> None:
    store, model = MemoryStore(), Model()
    store.down = True
    analyses = SharedAnalyses(store)
    assert (await analyses.get("k", Analysis, model.analyse))[1] is True
    assert (await analyses.get("k", Analysis, model.analyse))[1] is False
    assert model.calls == 1 and store.rows == {}


async def test_an_unreadable_stored_analysis_is_asked_again_and_replaced() -> None:
    store, model = MemoryStore(), Model()
    store.rows["k"] = {"unknown": "shape"}
    value, computed = await SharedAnalyses(store).get("k", Analysis, model.analyse)
    assert (value.kind, computed, model.calls) == ("general", True, 1)
    assert store.rows["k"] == {"kind": "general"}


async def test_the_map_is_bounded() -> None:
    model = Model()
    analyses = SharedAnalyses(max_entries=2)
    for key in ("a", "b", "c"):
        await analyses.get(key, Analysis, model.analyse)
    assert (await analyses.get("a", Analysis, model.analyse))[1] is True  # "a" was dropped
    assert model.calls == 4
