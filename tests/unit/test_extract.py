"""Page text extraction in child processes: the text of a page, a limit refusing the page, and
any other failure of the child surfacing as a step error that says what happened."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from scribe.clients.extract import ExtractLimits, TextExtractor
from scribe.errors import FetchRefused, TransientStepError

PAGE = (
    "<html><head><title>Jane Roe</title></head><body><nav>Home | About</nav><article>"
    "<h1>Jane Roe</h1><p>Jane Roe is a professor of mathematics who studies graph theory and "
    "quantum widgets, and teaches the department's first-year course on combinatorics.</p>"
    "</article><footer>Copyright</footer></body></html>"
)


def child(tmp_path: Path, body: str) -> Path:
    """A stand-in for extract_child.py that runs ``body``."""
    script = tmp_path / "child.py"
    script.write_text(f"import json, sys\n{body}\n")
    return script


async def test_the_main_text_of_a_page_comes_back_from_the_child() -> None:
    text = await TextExtractor().text(PAGE, "https://uni.example/~roe")
    assert "studies graph theory and quantum widgets" in text
    assert "Copyright" not in text
    assert "trafilatura" not in sys.modules  # read in the child, never in this process


async def test_a_page_without_text_is_empty() -> None:
    assert await TextExtractor().text("<html><body></body></html>") == ""


async def test_a_child_that_exits_without_an_answer_is_a_step_error(tmp_path: Path) -> None:
    extractor = TextExtractor(child=child(tmp_path, "sys.exit(3)"))
    with pytest.raises(TransientStepError, match="exited with status 3 without an answer"):
        await extractor.text(PAGE)


async def test_a_child_that_crashes_is_a_step_error(tmp_path: Path) -> None:
    extractor = TextExtractor(child=child(tmp_path, "import os; os.abort()"))
    with pytest.raises(TransientStepError, match=r"page text extraction failed: .*status -6"):
        await extractor.text(PAGE)


async def test_a_missing_child_is_a_step_error(tmp_path: Path) -> None:
    extractor = TextExtractor(child=tmp_path / "gone.py")
    with pytest.raises(TransientStepError, match="without an answer"):
        await extractor.text(PAGE)


async def test_a_page_past_the_cpu_limit_is_refused(tmp_path: Path) -> None:
    spin = child(
        tmp_path,
        "import resource\nresource.setrlimit(resource.RLIMIT_CPU, (1, 2))\nwhile True:\n    pass",
    )
    extractor = TextExtractor(ExtractLimits(cpu_seconds=1), child=spin)
    with pytest.raises(FetchRefused, match="1 s of CPU time"):
        await extractor.text(PAGE)


async def test_a_page_past_the_memory_limit_is_refused(tmp_path: Path) -> None:
    answer = json.dumps({"error": "memory", "limit": True})
    extractor = TextExtractor(child=child(tmp_path, f"sys.stdout.write({answer!r})"))
    with pytest.raises(FetchRefused, match="512 MB of memory"):
        await extractor.text(PAGE)


async def test_the_real_child_answers_memory_when_its_address_space_runs_out() -> None:
    # 128 MB of address space holds the interpreter and trafilatura, not the tree of a 1.6 MB
    # page of 200,000 elements (under the 2 MB page cap).
    crowded = "<p>x</p>" * 200_000
    extractor = TextExtractor(ExtractLimits(memory_mb=128))
    with pytest.raises(FetchRefused, match="more than 128 MB of memory"):
        await extractor.text(f"<html><body>{crowded}</body></html>")
