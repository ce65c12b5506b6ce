"""What importing the package changes (nothing), what the CLI entry sets before the app's
modules load, and the provider SDKs loaded by their first call rather than at start."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from scribe.clients.sdk import LazySdk

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, **env: str) -> dict[str, object]:
    """``code`` in a fresh interpreter (which prints one JSON line); its answer."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYDANTIC_")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    answer: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return answer


SNAPSHOT = """
import json, os, sys
before_env = dict(os.environ)
before_httpx = {k: v for k, v in sys.modules.items() if k.startswith("httpx")}
{action}
after_httpx = {k: v for k, v in sys.modules.items() if k.startswith("httpx")}
print(json.dumps({
    "env_changed": sorted(k for k in set(before_env) | set(os.environ)
                          if before_env.get(k) != os.environ.get(k)),
    "httpx_entries": sorted(set(after_httpx) - set(before_httpx)),
}))
"""


def test_importing_the_package_leaves_environ_and_httpx_alone() -> None:
    answer = run_python(SNAPSHOT.replace("{action}", "import scribe, scribe.settings"))
    assert answer == {"env_changed": [], "httpx_entries": []}


def test_the_cli_entry_sets_its_start_up_tweaks() -> None:
    answer = run_python(SNAPSHOT.replace("{action}", "from scribe import cli; cli.lean_imports()"))
    assert answer == {"env_changed": ["PYDANTIC_DISABLE_PLUGINS"], "httpx_entries": ["httpx._main"]}


def test_an_operators_plugin_setting_wins() -> None:
    code = "import os; from scribe import cli; cli.lean_imports(); import json; "
    code += "print(json.dumps({'value': os.environ['PYDANTIC_DISABLE_PLUGINS']}))"
    assert run_python(code, PYDANTIC_DISABLE_PLUGINS="logfire") == {"value": "logfire"}


OPEN_CONFIGURED = """
import asyncio, json, sys
import httpx
from scribe.clients import open_clients
from scribe.settings import Settings

async def main():
    settings = Settings(_env_file=None, anthropic_api_key="sk-test",
                        anthropic_base_url="http://127.0.0.1:9", exa_api_key="exa-test",
                        exa_base_url="http://127.0.0.1:9", openai_api_key="sk-test",
                        openai_base_url="http://127.0.0.1:9",
                        template_generator_model="openai:gpt-test")
    async with httpx.AsyncClient() as http, open_clients(settings, http):
        return sorted(m for m in ("anthropic", "openai", "exa_py") if m in sys.modules)

print(json.dumps({"loaded": asyncio.run(main())}))
"""


def test_opening_the_clients_with_every_key_loads_no_sdk() -> None:
    assert run_python(OPEN_CONFIGURED) == {"loaded": []}


async def test_concurrent_first_calls_build_the_client_once_off_the_loop() -> None:
    builds: list[str] = []
    started, release = threading.Event(), threading.Event()

    def build() -> object:
        builds.append(threading.current_thread().name)
        started.set()
        release.wait(30)
        return object()

    sdk = LazySdk(build)
    assert sdk.built is None
    calls = [asyncio.create_task(sdk.get()) for _ in range(5)]
    # The loop keeps running while the build waits in its thread: this await returns.
    assert await asyncio.to_thread(started.wait, 30)
    for _ in range(10):
        await asyncio.sleep(0)  # every other call is waiting for the build, none begins another
    assert len(builds) == 1 and builds[0] != threading.current_thread().name
    assert not any(call.done() for call in calls)
    release.set()
    clients = await asyncio.gather(*calls)
    assert len(builds) == 1
    assert all(client is clients[0] for client in clients) and sdk.built is clients[0]
    assert await sdk.get() is clients[0]


async def test_a_failed_build_is_tried_again_by_the_next_call() -> None:
    attempts: list[int] = []

    def build() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise ImportError("no module named 'anthropic'")
        return 42

    sdk = LazySdk(build)
    with pytest.raises(ImportError, match="anthropic"):
        await sdk.get()
    assert sdk.built is None
    assert await sdk.get() == 42


def test_a_long_running_process_gives_the_browser_driver_its_node_options() -> None:
    code = "import json, os; from scribe import cli; cli.lean_memory(); "
    code += "print(json.dumps({'node': os.environ['NODE_OPTIONS']}))"
    clean = {k: v for k, v in os.environ.items() if k != "NODE_OPTIONS"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=clean, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == {"node": "--max-semi-space-size=1"}
    assert run_python(code, NODE_OPTIONS="--max-old-space-size=96") == {
        "node": "--max-old-space-size=96"
    }
