"""Hostile-user attacks against a real ``scribe serve``: event-loop stall, memory, work bounds.

Starts the fakes (``tests/fakes/server.py``, which also serve the hostile PDFs) and ``scribe
serve`` as subprocesses on free loopback ports, the service with the embedded PostgreSQL in a
fresh temporary data dir, no model or search keys (the offline provider: the pipeline's own
text handling is what runs), arXiv pointed at the fakes. The service is ``scribe.cli.main(["serve",
…])`` itself, with one difference: ``create_app`` gets the tests' SSRF hook that lets the service
fetch PDFs from the fakes' loopback port (production has no way to set it), so the PDF host
allow-list can name the fakes.

While each attack runs, one client sends ``GET /health`` back to back on its own connection, and
another a CORS preflight (answered by middleware, no database); the p99/max of their latency is
the stall other users see (/health also waits for a pool connection while the consumer and the
attack use the database; the preflight measures the event loop alone). Attacks:

1. template: POST /api/queue/batch with a 10,000-character template ending in ``"{{" +
   " " * 9_800 + "x"``, 40 items, and the consumer processing them (after a control run: the
   same batch with a normal 10,000-character template, for the cost of the work itself);
2. PDFs: three concurrent POST /api/templates/ of a hostile PDF (a Flate content stream that
   inflates to 10 MB of text operators: minutes of pypdf CPU in-process), three users;
   service RSS is sampled every 20 ms (its own process, not the parse children);
3. quota: one user posts 60 batches of 100 items (6,000), 10 concurrent requests at a time.

Then, in this process: the worst processing time of a 10,000-character adversarial template
through every text function the service runs on it.

    .venv/bin/python bench/hostile.py
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _support import wait_healthy  # noqa: E402

from scribe.http.auth import DEV_ISSUER, dev_secret, mint_token  # noqa: E402

TEMPLATE_LIMIT = 10_000
TEMPLATE_ITEMS = 40
TEMPLATE_REPEATS = 7
NORMAL_TEMPLATE = (
    "Dear {{name}}, I read your recent work on {{topic}} with great interest and would love "
    "to ask two short questions about it."
)
INSTRUCTIONS = "Keep it short and mention my robotics work."


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve_with_fake_pdf_host(port: int, fakes_port: int) -> None:
    """``scribe serve`` with the tests' SSRF hook for the fakes' port (bench only)."""
    import scribe.app
    from scribe.cli import main
    from tests.fakes.fixtures import fake_policy

    original = scribe.app.create_app

    def create_app(settings: Any, pipeline_factory: Any = None, **_: Any) -> Any:
        return original(settings, pipeline_factory, address_policy=fake_policy(fakes_port))

    scribe.app.create_app = create_app
    sys.exit(main(["serve", "--host", "127.0.0.1", "--port", str(port)]))


def _start_fakes() -> tuple[subprocess.Popen[str], str, int]:
    fakes = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.server"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert fakes.stdout is not None
    url = fakes.stdout.readline().strip()
    return fakes, url, int(url.rsplit(":", 1)[1])


def _start_service(data_dir: Path, port: int, fakes_url: str, fakes_port: int) -> Any:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SUPABASE_", "ANTHROPIC_", "OPENAI_", "EXA_", "DATABASE_URL"))
    }
    env.update(
        SCRIBE_DATA_DIR=str(data_dir),
        LOG_LEVEL="WARNING",
        PDF_ALLOWED_HOSTS="public.test",
        ARXIV_API_URL=f"{fakes_url}/arxiv/api/query",
        ADMIN_EMAILS="",
        PYTHONPATH=str(REPO),
    )
    return subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), str(fakes_port)],
        env=env,
        stdin=subprocess.DEVNULL,
    )


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


PREFLIGHT = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"}


class Stall:
    """Two probes back to back, each on its own connection, until stopped: ``GET /health``
    (event loop plus a database round trip through the pool) and a CORS preflight (answered by
    middleware: the event loop alone). Latencies in seconds."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.latencies: dict[str, list[float]] = {"/health": [], "preflight": []}
        self._stop = asyncio.Event()

    async def run(self) -> None:
        await asyncio.gather(self._probe("/health"), self._probe("preflight"))

    async def _probe(self, name: str) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=120.0) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                if name == "/health":
                    response = await client.get("/health")
                else:
                    response = await client.options("/api/queue/", headers=PREFLIGHT)
                self.latencies[name].append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise SystemExit(f"{name} answered {response.status_code}")
                await asyncio.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()

    def summary(self) -> str:
        ms = 1000.0
        lines = []
        for name, values in self.latencies.items():
            lines.append(
                f"{name:9} p50 {_percentile(values, 0.5) * ms:6.1f} ms  "
                f"p99 {_percentile(values, 0.99) * ms:6.1f} ms  "
                f"max {max(values) * ms:6.1f} ms  ({len(values)} requests)"
            )
        return "\n  ".join(lines)


async def _during(base_url: str, attack: Callable[[], Awaitable[str]]) -> tuple[str, str]:
    stall = Stall(base_url)
    probe = asyncio.create_task(stall.run(), name="stall-probes")
    await asyncio.sleep(0.2)
    try:
        outcome = await attack()
    finally:
        stall.stop()
        await probe
    return outcome, stall.summary()


async def _user(client: httpx.AsyncClient, secret: str, email: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {mint_token(secret, email=email, issuer=DEV_ISSUER)}"}
    response = await client.post("/api/user/init", json={}, headers=headers)
    assert response.status_code in (200, 201), response.text
    return headers


def _statuses(responses: list[httpx.Response]) -> str:
    counts: dict[int, int] = {}
    for response in responses:
        counts[response.status_code] = counts.get(response.status_code, 0) + 1
    return ", ".join(f"{count} x {status}" for status, count in sorted(counts.items()))


async def _wait_processed(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    deadline = time.perf_counter() + 300
    while time.perf_counter() < deadline:
        items = (await client.get("/api/queue/", headers=headers)).json()
        if items and all(item["status"] in ("completed", "failed") for item in items):
            return _statuses_of(items)
        await asyncio.sleep(0.2)
    return "not finished in 300 s: " + _statuses_of(items)


def _statuses_of(items: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for item in items:
        counts[item["status"]] = counts.get(item["status"], 0) + 1
    return ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))


def worst_template_seconds() -> tuple[float, str]:
    """The slowest adversarial 10,000-char template through the service's text functions."""
    from scribe.api.template_generation import word_count
    from scribe.domain.placeholders import fill, unfilled
    from scribe.domain.templates import validate_template
    from scribe.domain.text import remove_machine_tells
    from scribe.steps.composer_brief import all_sources, fill_value
    from scribe.steps.template_parser import merge, offline_analysis
    from tests.fakes.fixtures import brief, item

    n = TEMPLATE_LIMIT
    templates = {
        "'{{' + spaces + 'x'": "{{" + " " * (n - 3) + "x",
        "'{{' + spaces": "{{" + " " * (n - 2),
        "unclosed '{{ a '": "{{ a " * (n // 5),
        "'{{a}' repeated": "{{a}" * (n // 4),
        "nested braces": "{" * (n // 2) + "}" * (n // 2),
        "distinct placeholders": "".join(f"{{{{p{i}}}}} " for i in range(n // 9))[:n],
        "em dashes in spaces": (" " * 99 + "\u2014") * (n // 100),
        "stock phrases": "I hope this email finds you well. delve into " * (n // 45),
    }
    worst, worst_name = 0.0, ""
    for name, template in templates.items():
        assert len(template) <= n, name
        data = item(template)
        times = []
        for _ in range(TEMPLATE_REPEATS):
            started = time.perf_counter()
            with contextlib.suppress(ValueError):
                validate_template(template)
            analysed = merge(data.inputs, offline_analysis(data.inputs))
            read = brief(data, analysed)
            sources = all_sources(read)
            email = fill(
                template,
                analysed.placeholders,
                functools.partial(fill_value, brief=read, sources=sources),
            )
            unfilled(email, analysed.placeholders)
            remove_machine_tells(email)
            word_count(template)
            times.append(time.perf_counter() - started)
        typical = statistics.median(times)  # the machine is shared: one slow run is noise
        if typical > worst:
            worst, worst_name = typical, name
    return worst, worst_name


async def main() -> None:
    """Run every attack and print the figures."""
    work = Path(tempfile.mkdtemp(prefix="scribe-hostile-"))
    data_dir = work / "data"
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    fakes, fakes_url, fakes_port = _start_fakes()
    server = _start_service(data_dir, port, fakes_url, fakes_port)
    try:
        await wait_healthy(base_url, server)
        process = psutil.Process(server.pid)
        secret = dev_secret(data_dir)
        async with httpx.AsyncClient(base_url=base_url, timeout=300.0) as client:
            await asyncio.sleep(2.0)
            _, idle = await _during(base_url, lambda: asyncio.sleep(3.0, result=""))
            print(f"idle:\n  {idle}")

            attacker = await _user(client, secret, "attacker@uni.edu")
            hostile = (NORMAL_TEMPLATE + " {{").ljust(TEMPLATE_LIMIT - 1) + "x"
            assert len(hostile) == TEMPLATE_LIMIT

            def template_attack(template: str, headers: dict[str, str]) -> Any:
                async def attack() -> str:
                    items = [
                        {"recipient_name": f"Prof. R{n}", "recipient_interest": "widgets"}
                        for n in range(TEMPLATE_ITEMS)
                    ]
                    body = {"email_template": template, "items": items}
                    started = time.perf_counter()
                    response = await client.post("/api/queue/batch", json=body, headers=headers)
                    answer = f"POST {response.status_code} in {time.perf_counter() - started:.3f} s"
                    return f"{answer}; items: {await _wait_processed(client, headers)}"

                return attack

            control = (NORMAL_TEMPLATE + " ").ljust(TEMPLATE_LIMIT, "x")
            control_user = await _user(client, secret, "control@uni.edu")
            outcome, stall = await _during(base_url, template_attack(control, control_user))
            print(f"control (same batch, normal 10,000-char template):\n  {stall}\n  {outcome}")
            outcome, stall = await _during(base_url, template_attack(hostile, attacker))
            print(f"template attack ('{{{{' + spaces):\n  {stall}\n  {outcome}")

            pdf_users = [await _user(client, secret, f"pdf{n}@uni.edu") for n in range(3)]
            idle_rss = process.memory_info().rss / 2**20
            peak_rss = [idle_rss]

            async def sample_rss(stop: asyncio.Event) -> None:
                while not stop.is_set():
                    peak_rss[0] = max(peak_rss[0], process.memory_info().rss / 2**20)
                    await asyncio.sleep(0.02)

            async def pdf_attack() -> str:
                stop = asyncio.Event()
                sampler = asyncio.create_task(sample_rss(stop), name="rss-sampler")
                body = {
                    "pdf_url": f"http://public.test:{fakes_port}/pdf/hostile-10.pdf",
                    "user_instructions": INSTRUCTIONS,
                }
                started = time.perf_counter()
                responses = await asyncio.gather(
                    *(client.post("/api/templates/", json=body, headers=h) for h in pdf_users)
                )
                elapsed = time.perf_counter() - started
                stop.set()
                await sampler
                detail = responses[0].json().get("detail", "")
                return f"{_statuses(responses)} in {elapsed:.1f} s; first detail: {detail!r}"

            outcome, stall = await _during(base_url, pdf_attack)
            print(f"3 concurrent hostile PDFs:\n  {stall}\n  {outcome}")
            print(
                f"  service RSS: idle {idle_rss:.1f} MiB, peak during the PDFs "
                f"{peak_rss[0]:.1f} MiB (+{peak_rss[0] - idle_rss:.1f} MiB)"
            )

            spender = await _user(client, secret, "spender@uni.edu")

            async def quota_attack() -> str:
                items = [
                    {"recipient_name": f"Prof. R{n}", "recipient_interest": "widgets"}
                    for n in range(100)
                ]
                body = {"email_template": NORMAL_TEMPLATE, "items": items}
                responses: list[httpx.Response] = []
                for _round in range(6):
                    responses += await asyncio.gather(
                        *(
                            client.post("/api/queue/batch", json=body, headers=spender)
                            for _ in range(10)
                        )
                    )
                queued = sum(
                    len(r.json()["queue_item_ids"]) for r in responses if r.status_code == 201
                )
                listed = len((await client.get("/api/queue/", headers=spender)).json())
                refused = next((r for r in responses if r.status_code == 429), None)
                detail = refused.json()["detail"] if refused is not None else ""
                return (
                    f"60 batches of 100: {_statuses(responses)}; {queued} items queued; "
                    f"GET /api/queue/ returned {listed}; 429 detail: {detail!r}"
                )

            outcome, stall = await _during(base_url, quota_attack)
            print(f"6,000-item quota attack:\n  {stall}\n  {outcome}")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        fakes.terminate()
        fakes.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

    seconds, name = worst_template_seconds()
    print(
        "worst 10,000-char adversarial template through the service's text functions "
        f"(median of {TEMPLATE_REPEATS} runs): {seconds * 1000:.2f} ms ({name})"
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve_with_fake_pdf_host(int(sys.argv[2]), int(sys.argv[3]))
    else:
        asyncio.run(main())
