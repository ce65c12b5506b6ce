"""``scribe generate`` and ``scribe demo`` run to completion offline, as real processes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.fakes.fixtures import GENERAL_TEMPLATE

# No keys (offline provider, search skipped); arXiv on a closed port: nothing leaves the machine.
OFFLINE_ENV = {"ARXIV_API_URL": "http://127.0.0.1:9/", "LOG_LEVEL": "WARNING"}


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
