"""Fixtures and helpers for tests that use the fakes (import them into a folder's conftest)."""

from __future__ import annotations

import contextlib
import ipaddress
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from scribe.clients import Clients, open_clients, pacing_caps
from scribe.clients.analyses import AnalysisStore
from scribe.clients.netguard import AddressPolicy, IPAddress, system_resolver
from scribe.providers.account import Clock
from scribe.providers.accounts import Accounts
from scribe.settings import Settings
from scribe.steps.email_composer import Brief
from scribe.steps.models import (
    ArxivMetadata,
    PaperSearch,
    ParsedTemplate,
    ScrapingMetadata,
    WebResearch,
)
from scribe.steps.pipeline import EmailInputs, EmailState, Pipeline, start_state
from tests.fakes.server import serve_asgi
from tests.fakes.services import FakeServices

# Names the tests' resolver answers (DNS is mocked at the resolver, the guard itself is real).
TEST_HOSTS = {
    "public.test": "127.0.0.1",  # "public" site: the fake, allowed by port
    "intranet.test": "10.1.2.3",  # resolves to a private address
    "metadata.test": "169.254.169.254",
}

RESEARCH_TEMPLATE = (
    "Dear {{professor_name}},\n\nI recently read your paper {{paper_title}} and was struck by how "
    "it connects to my own interest in {{research_area}}. I would love to ask whether you have "
    "room for an undergraduate researcher this summer.\n\nBest regards,\nAlex"
)
GENERAL_TEMPLATE = (
    "Dear {{professor_name}},\n\nI learned about your role at {{institution}} and I am excited "
    "by what your group does. I would welcome the chance to talk about joining your team as a "
    "student volunteer this year.\n\nBest regards,\nAlex"
)


async def test_resolver(host: str, port: int) -> list[IPAddress]:
    """Resolve the test host names; everything else through the system resolver."""
    if host in TEST_HOSTS:
        return [ipaddress.ip_address(TEST_HOSTS[host])]
    return await system_resolver(host, port)


def fake_policy(port: int) -> AddressPolicy:
    """The SSRF rule, widened (test-only hook) to the fakes' loopback port and nothing else."""
    return AddressPolicy(resolver=test_resolver, allow=lambda ip, p: ip.is_loopback and p == port)


@pytest.fixture
async def fakes() -> AsyncIterator[FakeServices]:
    """Every fake service, served on one loopback port."""
    services = FakeServices()
    async with serve_asgi(services.app()) as (url, port):
        services.base_url = url
        services.port = port
        yield services


def fake_settings(fakes: FakeServices, **overrides: Any) -> Settings:
    """Settings with every provider pointed at the fakes (keys set, fast timeouts)."""
    values: dict[str, Any] = {
        "anthropic_api_key": "sk-ant-test",
        "anthropic_base_url": f"{fakes.base_url}/anthropic",
        "openai_api_key": "sk-openai-test",
        "openai_base_url": f"{fakes.base_url}/openai/v1",
        "exa_api_key": "exa-test",
        "exa_base_url": f"{fakes.base_url}/exa",
        "arxiv_api_url": f"{fakes.base_url}/arxiv/api/query",
        "llm_timeout_seconds": 5.0,
        "llm_max_retries": 0,
        "pdf_allowed_hosts": "public.test",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def fake_clients(
    settings: Settings,
    fakes: FakeServices,
    analysis_store: AnalysisStore | None = None,
    *,
    clock: Clock | None = None,
    accounts: Accounts | None = None,
) -> AsyncIterator[Clients]:
    """``open_clients`` for these settings with the test SSRF hook for the fakes' port (and the
    shared template analyses ``analysis_store``, if given; the provider accounts pace by
    ``clock``, if given; ``accounts``: the records to use instead)."""
    async with (
        httpx.AsyncClient(timeout=10) as http,
        open_clients(
            settings,
            http,
            address_policy=fake_policy(fakes.port),
            analysis_store=analysis_store,
            accounts=accounts or Accounts(pacing_caps(settings), clock=clock),
        ) as clients,
    ):
        yield clients


def item(template: str = RESEARCH_TEMPLATE, name: str = "Prof. Jane Roe") -> EmailState:
    """A fresh EmailState as the queue would build it."""
    inputs = EmailInputs(
        queue_item_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        recipient_name=name,
        recipient_interest="quantum widgets",
        email_template=template,
    )
    return start_state(inputs)


async def run_pipeline(pipeline: Pipeline, state: EmailState) -> EmailState:
    """Run every step in order, recording each one's seconds as the queue does (the queue
    itself runs them with checkpoints)."""
    for step in pipeline:
        started = time.perf_counter()
        state = await step.run(state)
        seconds = round(time.perf_counter() - started, 4)
        state = state.model_copy(
            update={"step_timings": {**state.step_timings, step.name: seconds}}
        )
    return state


def brief(state: EmailState, parsed: ParsedTemplate) -> Brief:
    """What the composer reads for ``state`` when search and arXiv found nothing."""
    return Brief(
        state.inputs,
        parsed,
        WebResearch(scraping_metadata=ScrapingMetadata(search="skipped", reason="test")),
        PaperSearch(arxiv_metadata=ArxivMetadata(status="skipped", reason="test")),
    )
