"""Lean start: ``scribe serve``'s start-up path loads no provider SDK, browser driver, extractor,
PDF parser or tracing it was not configured for (each is tens of MiB and part of a second).

Run in a fresh interpreter: this test process has already imported most of them (pytest loads
logfire's plugin, other tests import the SDKs).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.conftest import TEST_JWT_SECRET

# What `scribe serve` does up to serving: the CLI's settings, the app, tracing and the whole
# lifespan (database, migrations, pool, clients, LISTEN, consumer), then the modules loaded.
SERVE_PATH = """
import asyncio, json, sys
from scribe.cli import build_parser, lean_imports
lean_imports()
from scribe.app import create_app
from scribe.settings import load_settings
from scribe.tracing import configure_tracing

async def main():
    settings = load_settings()
    app = create_app(settings)
    configure_tracing(settings, app)
    async with app.router.lifespan_context(app):
        loaded = sorted(name for name in sys.modules if name.split(".")[0] in HEAVY)
    print(json.dumps(sorted({name.split(".")[0] for name in loaded})))

HEAVY = set(sys.argv[1].split(","))
asyncio.run(main())
"""
HEAVY = (
    "anthropic",
    "openai",
    "exa_py",
    "pypdf",
    "playwright",
    "trafilatura",
    "arxiv",
    "logfire",
    "opentelemetry",
    "google",  # protobuf, which logfire's exporters bring
    "rich",  # with click and pygments: httpx's command-line client (kept out by lean_imports)
)


async def _loaded_on_serve_path(database_url: str, tmp_path: Path, **env: str) -> set[str]:
    # Built from scratch: this process's environment may have PYDANTIC_DISABLE_PLUGINS set, which
    # would hide a child that no longer sets it.
    child_env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": database_url,
        "SCRIBE_DATA_DIR": str(tmp_path / "data"),
        "SUPABASE_JWT_SECRET": TEST_JWT_SECRET,
        "LOG_LEVEL": "WARNING",
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVE_PATH,
        ",".join(HEAVY),
        cwd=tmp_path,  # no .env file
        env=child_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    loaded: list[str] = json.loads(stdout.decode().strip().splitlines()[-1])
    return set(loaded)


async def test_serve_without_keys_loads_no_sdk_browser_extractor_pdf_or_tracing(
    database_url: str, tmp_path: Path
) -> None:
    assert await _loaded_on_serve_path(database_url, tmp_path) == set()


async def test_serve_with_provider_keys_loads_no_sdk_either(
    database_url: str, tmp_path: Path
) -> None:
    loaded = await _loaded_on_serve_path(
        database_url,
        tmp_path,
        ANTHROPIC_API_KEY="sk-ant-test",
        ANTHROPIC_BASE_URL="http://127.0.0.1:9",
        EXA_API_KEY="exa-test",
        EXA_BASE_URL="http://127.0.0.1:9",
    )
    # The Anthropic SDK is loaded by the first call, Exa's is not used (one POST over httpx);
    # the browser driver, arXiv and the PDF parser on first use, the extractor and pypdf only in
    # their child processes.
    assert loaded == set()
