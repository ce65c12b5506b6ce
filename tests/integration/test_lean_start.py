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
from tests.fakes.services import FakeServices

# What `scribe serve` does up to serving: the CLI's settings, the app, tracing and the whole
# lifespan (database, migrations, pool, clients, LISTEN, consumer), then the modules loaded.
SERVE_PATH = """
import asyncio, json, sys
from scribe.cli import build_parser, lean_imports
lean_imports()
from scribe.app import create_app
from scribe.settings import load_settings
from scribe.process.tracing import configure_tracing

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
    # The provider SDKs are loaded by their first call; the browser driver, arXiv and the PDF
    # parser on first use, the extractor and pypdf only in their child processes.
    assert loaded == set()


# Clients opened with every key, pointed at the fakes: the SDKs loaded before and after a first
# Anthropic call and a first Exa search, and what those calls answered.
FIRST_CALLS = """
import asyncio, json, sys
import httpx
from pydantic import BaseModel
from scribe.clients import open_clients
from scribe.clients.llm import LLMRequest
from scribe.settings import Settings

class Draft(BaseModel):
    template: str

def sdks():
    return sorted(m for m in ("anthropic", "openai", "exa_py") if m in sys.modules)

async def main(base):
    settings = Settings(_env_file=None, anthropic_api_key="sk-ant-test",
                        anthropic_base_url=f"{base}/anthropic", exa_api_key="exa-test",
                        exa_base_url=f"{base}/exa", llm_max_retries=0)
    async with httpx.AsyncClient() as http, open_clients(settings, http) as clients:
        seen = {"ready": sdks()}
        request = LLMRequest(purpose="email_composer", system="Fill the placeholders.",
                             prompt="Recipient: Grace Hopper", output=Draft,
                             offline=lambda: Draft(template=""))
        answer = await clients.composer_llm.generate(request)
        seen["after_llm"] = sdks()
        hits = await clients.search.search("Jane Roe")
        seen["after_search"] = sdks()
        seen["answered"] = [bool(answer.value.template), len(hits) > 0]
    return seen

print(json.dumps(asyncio.run(main(sys.argv[1]))))
"""


async def test_the_first_call_of_a_configured_service_loads_its_sdk(
    fakes: FakeServices, tmp_path: Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        FIRST_CALLS,
        fakes.base_url,
        cwd=tmp_path,  # no .env file
        env={"PATH": os.environ.get("PATH", ""), "LOG_LEVEL": "WARNING"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert json.loads(stdout.decode().strip().splitlines()[-1]) == {
        "ready": [],
        "after_llm": ["anthropic"],
        "after_search": ["anthropic", "exa_py", "openai"],  # exa_py imports openai's types
        "answered": [True, True],
    }
    assert len(fakes.of("anthropic")) == 1 and len(fakes.of("exa")) == 1
