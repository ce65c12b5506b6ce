"""``scribe generate`` and ``scribe demo`` run to completion offline, as real processes; a
failing provider or a step past its timeout ends ``scribe generate`` with the failed step named
and exit 1, no traceback."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from tests.fakes.fixtures import GENERAL_TEMPLATE, RESEARCH_TEMPLATE
from tests.fakes.services import FakeServices, Scripted

# No keys (offline provider, search skipped); arXiv on a closed port: nothing leaves the machine.
CLOSED_PORT = "http://127.0.0.1:9"
OFFLINE_ENV = {"ARXIV_API_URL": f"{CLOSED_PORT}/", "LOG_LEVEL": "WARNING"}
STEPS = ("template_parser", "web_scraper", "arxiv_helper", "email_composer")


async def _scribe(*args: str, cwd: Path, **env: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scribe.cli",
        *args,
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", ""), **OFFLINE_ENV, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 50)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_generate_prints_the_email_confidence_and_progress(tmp_path: Path) -> None:
    template = tmp_path / "template.txt"
    template.write_text(GENERAL_TEMPLATE)
    code, out, err = await _scribe(
        "generate",
        "--template",
        str(template),
        "--name",
        "Ada Lovelace",
        "--interest",
        "analytical engines",
        cwd=tmp_path,
        SCRIBE_DATA_DIR=str(tmp_path / "data"),
    )
    assert code == 0, err
    assert out.lstrip().startswith("Dear Ada Lovelace,")
    assert "{{" not in out.split("-" * 72)[0]  # the email; the fills below name placeholders
    assert "  {{professor_name}} = 'Ada Lovelace' [no source] supported" in out
    assert "Confidence: not confident: written offline" in out
    assert "Sources: none" in out
    for step in ("template_parser", "web_scraper", "arxiv_helper", "email_composer"):
        assert f"{step} done in" in err
    assert "offline provider" in err
    assert not (tmp_path / "data").exists()  # no database was started


async def test_generate_json_prints_the_full_result(tmp_path: Path) -> None:
    template = tmp_path / "template.txt"
    template.write_text("Hi {{name}}, about your work on {{topic}}.")
    code, out, err = await _scribe(
        "generate",
        "--template",
        str(template),
        "--name",
        "Grace Hopper",
        "--interest",
        "compilers",
        "--json",
        cwd=tmp_path,
        SCRIBE_DATA_DIR=str(tmp_path / "data"),
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["email_message"] == "Hi Grace Hopper, about your work on compilers."
    assert result["is_confident"] is False
    metadata = result["metadata"]
    assert metadata["model"] == "offline"
    assert set(metadata["step_timings"]) == {
        "template_parser",
        "web_scraper",
        "arxiv_helper",
        "email_composer",
    }


async def test_generate_with_a_missing_template_file_exits_2(tmp_path: Path) -> None:
    code, _, err = await _scribe(
        "generate", "--template", "nope.txt", "--name", "A B", "--interest", "x", cwd=tmp_path
    )
    assert code == 2
    assert "cannot read --template" in err


async def test_generate_refuses_a_template_under_ten_characters(tmp_path: Path) -> None:
    (tmp_path / "short.txt").write_text("Hi {{n}}")
    code, _, err = await _scribe(
        "generate", "--template", "short.txt", "--name", "A B", "--interest", "x", cwd=tmp_path
    )
    assert code == 2
    assert "too short" in err


async def test_demo_queues_three_recipients_and_prints_their_emails(
    tmp_path: Path, database_url: str
) -> None:
    code, out, err = await _scribe(
        "demo", cwd=tmp_path, DATABASE_URL=database_url, SCRIBE_DATA_DIR=str(tmp_path / "data")
    )
    assert code == 0, out + err
    assert "offline provider" in out
    assert out.count("=== Email to ") == 3
    for name in ("Yoshua Bengio", "Fei-Fei Li", "Daphne Koller"):
        assert f"Dear {name}," in out
        assert f"{name:<16} completed" in out
    assert "3 of 3 emails completed" in out


async def _generate(tmp_path: Path, template: str, *args: str, **env: str) -> tuple[int, str, str]:
    (tmp_path / "template.txt").write_text(template)
    return await _scribe(
        "generate",
        "--template",
        "template.txt",
        "--name",
        "Ada Lovelace",
        "--interest",
        "analytical engines",
        *args,
        cwd=tmp_path,
        SCRIBE_DATA_DIR=str(tmp_path / "data"),
        LLM_MAX_RETRIES="0",
        **env,
    )


def _anthropic(fakes: FakeServices) -> dict[str, str]:
    return {"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": f"{fakes.base_url}/anthropic"}


def _assert_step_failed(code: int, out: str, err: str, step: str, why: str) -> None:
    assert code == 1, err
    number = STEPS.index(step) + 1
    failed = [line for line in err.splitlines() if f"[{number}/4] {step} failed after" in line]
    assert len(failed) == 1, err
    assert why in failed[0], err
    assert "Traceback" not in err
    assert not any(f"{later} ..." in err for later in STEPS[number:])  # it stopped there
    assert out == ""


@pytest.mark.parametrize(
    ("status", "why"),
    [
        (500, "anthropic:claude-haiku: LLM returned HTTP 500"),
        (529, "anthropic:claude-haiku: LLM returned HTTP 529"),
        (401, "anthropic:claude-haiku paused: HTTP 401"),
    ],
)
async def test_generate_names_the_step_an_anthropic_error_failed_and_exits_1(
    tmp_path: Path, fakes: FakeServices, status: int, why: str
) -> None:
    fakes.outages["anthropic"] = status
    code, out, err = await _generate(tmp_path, GENERAL_TEMPLATE, **_anthropic(fakes))
    _assert_step_failed(code, out, err, "template_parser", why)
    assert len(fakes.of("anthropic")) == 1  # LLM_MAX_RETRIES=0: asked once


async def test_generate_with_anthropic_unreachable_fails_the_first_step_and_exits_1(
    tmp_path: Path,
) -> None:
    code, out, err = await _generate(
        tmp_path,
        GENERAL_TEMPLATE,
        ANTHROPIC_API_KEY="sk-ant-test",
        ANTHROPIC_BASE_URL=CLOSED_PORT,
    )
    _assert_step_failed(
        code, out, err, "template_parser", "anthropic:claude-haiku: LLM request failed"
    )


@pytest.mark.parametrize(
    ("outage", "why"), [(True, "exa: search returned HTTP 500"), (False, "exa: search connection")]
)
async def test_generate_names_the_web_scraper_when_exa_fails_and_exits_1(
    tmp_path: Path, fakes: FakeServices, outage: bool, why: str
) -> None:
    fakes.outages["exa"] = 500
    exa_url = f"{fakes.base_url}/exa" if outage else CLOSED_PORT
    code, out, err = await _generate(
        tmp_path,
        GENERAL_TEMPLATE,
        EXA_API_KEY="exa-test",
        EXA_BASE_URL=exa_url,
        **_anthropic(fakes),
    )
    _assert_step_failed(code, out, err, "web_scraper", why)
    assert "[1/4] template_parser done in" in err
    assert len(fakes.of("exa")) == (2 if outage else 0)  # the two queries, each asked once


@pytest.mark.parametrize("slow", ["answer", "rate limit"])
async def test_generate_fails_a_step_past_the_step_timeout_and_exits_1(
    tmp_path: Path, fakes: FakeServices, slow: str
) -> None:
    if slow == "answer":
        fakes.script("anthropic", Scripted(delay=3.0))
    else:  # every call a 429: waited out (a rate limit is no failure) until the step timeout
        fakes.outages["anthropic"] = 429
    code, out, err = await _generate(
        tmp_path, GENERAL_TEMPLATE, SCRIBE_STEP_TIMEOUT_SECONDS="0.3", **_anthropic(fakes)
    )
    _assert_step_failed(
        code, out, err, "template_parser", "timed out after 0.3 s (SCRIBE_STEP_TIMEOUT_SECONDS)"
    )


async def test_generate_with_arxiv_unreachable_writes_the_email_without_papers(
    tmp_path: Path, fakes: FakeServices
) -> None:
    code, out, err = await _generate(tmp_path, RESEARCH_TEMPLATE, "--json", **_anthropic(fakes))
    assert code == 0, err
    assert "[3/4] arxiv_helper done in" in err
    assert "arXiv lookup failed" in err  # the step degrades: the lookup is optional
    metadata = json.loads(out)["metadata"]
    assert metadata["arxiv_metadata"]["status"] == "failed"
    assert metadata["arxiv_papers"] == []
