"""Every refusal of docs/refusals.md, as the frontend's own client receives it: the status, the
text the page shows, and how many requests the page ends up sending (its client's retries and
React Query's re-send of a failed mutation), each checked against the row of that table.

Each case runs through the fixture model of the client (always) and through the frontend's real
TypeScript client under node when ``SCRIBE_FRONTEND_DIR`` names a checkout (see
``tests/frontend/client.py``).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from scribe.app import create_app
from scribe.db.pool import Pool
from scribe.settings import Settings
from tests.conftest import token_for
from tests.fakes.fixtures import fake_policy, fake_settings
from tests.fakes.server import serve_asgi
from tests.fakes.services import FakeServices
from tests.frontend import client as frontend
from tests.frontend import pages
from tests.frontend.client import FrontendClient, ModelClient, Outcome, RealClient
from tests.queue_support import create_user, enqueue

TABLE = Path(__file__).parents[2] / "docs" / "refusals.md"
STUDENT = "student@uni.edu"
ADMIN = "boss@uni.edu"
INSTRUCTIONS = "Keep it short and mention my robotics work."
TEMPLATE = "Dear {{name}}, I enjoyed your work on {{research_area}}."


@dataclass(frozen=True, slots=True)
class Seen:
    """One refusal as the user met it."""

    status: int
    shown: str
    requests: int


@dataclass(frozen=True, slots=True)
class Served:
    """The app under test, the frontend's client pointed at it, and the database."""

    client: FrontendClient
    http: httpx.AsyncClient
    pool: Pool
    pdf_base: str

    async def init(self, email: str = STUDENT) -> str:
        """Create the profile (as the frontend does after sign-in); the caller's token."""
        token = token_for(email)
        headers = {"Authorization": f"Bearer {token}"}
        assert (await self.http.post("/api/user/init", json={}, headers=headers)).is_success
        return token


@pytest.fixture(params=["model", "real"])
def client_kind(request: pytest.FixtureRequest) -> str:
    """The fixture model always; the real client when a frontend checkout is configured."""
    kind: str = request.param
    if kind == "real" and frontend.frontend_dir() is None:
        pytest.skip("SCRIBE_FRONTEND_DIR (a frontend checkout with node_modules) is not set")
    return kind


@pytest.fixture
def serving(
    make_settings: Callable[..., Settings], fakes: FakeServices, pool: Pool, client_kind: str
) -> Callable[..., contextlib.AbstractAsyncContextManager[Served]]:
    """Serve the app with settings overrides; the chosen client pointed at it."""

    @contextlib.asynccontextmanager
    async def serve(**overrides: Any) -> AsyncIterator[Served]:
        values = {**fake_settings(fakes).model_dump(exclude_unset=True), **overrides}
        settings = make_settings(admin_emails=ADMIN, scribe_worker=False, **values)
        app = create_app(settings, address_policy=fake_policy(fakes.port))
        async with (
            serve_asgi(app) as (url, _port),
            httpx.AsyncClient(base_url=url, timeout=30) as http,
        ):
            dir_ = frontend.frontend_dir()
            client: FrontendClient = (
                RealClient(dir_, url) if client_kind == "real" and dir_ else ModelClient(http)
            )
            yield Served(client, http, pool, f"http://public.test:{fakes.port}/pdf")

    return serve


Serving = Callable[..., contextlib.AbstractAsyncContextManager[Served]]


def seen(outcome: Outcome, shown: str) -> Seen:
    assert outcome.failure is not None
    return Seen(outcome.failure.status, shown, outcome.fetches)


async def counted_attempts(pool: Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM template_attempts WHERE counted")
    return count


# --- the cases, one per row of the table ---


async def templates_cap(serving: Serving) -> Seen:
    async with serving() as app:
        token = await app.init()
        await app.pool.execute("UPDATE users SET template_count = 5")
        call = frontend.generate_template(f"{app.pdf_base}/resume.pdf", INSTRUCTIONS)
        outcome = await pages.mutate(app.client, call, token)
        assert await counted_attempts(app.pool) == 0
        return seen(outcome, pages.template_page(outcome))


async def templates_daily(serving: Serving) -> Seen:
    async with serving(scribe_template_attempts_per_day=1) as app:
        token = await app.init()
        first = frontend.generate_template(f"{app.pdf_base}/scanned.pdf", INSTRUCTIONS)
        assert (await app.client.send(first, token)).failure is not None
        call = frontend.generate_template(f"{app.pdf_base}/resume.pdf", INSTRUCTIONS)
        outcome = await pages.mutate(app.client, call, token)
        assert await counted_attempts(app.pool) == 1
        return seen(outcome, pages.template_page(outcome))


async def templates_in_flight(serving: Serving) -> Seen:
    async with serving() as app:
        token = await app.init()
        await app.pool.execute(
            "INSERT INTO template_attempts (id, user_id) SELECT gen_random_uuid(), id FROM users"
        )
        call = frontend.generate_template(f"{app.pdf_base}/resume.pdf", INSTRUCTIONS)
        outcome = await pages.mutate(app.client, call, token)
        return seen(outcome, pages.template_page(outcome))


async def templates_unreadable(serving: Serving) -> Seen:
    async with serving() as app:
        token = await app.init()
        call = frontend.generate_template(f"{app.pdf_base}/scanned.pdf", INSTRUCTIONS)
        outcome = await pages.mutate(app.client, call, token)
        assert await counted_attempts(app.pool) == 1  # the page's re-send counts once
        return seen(outcome, pages.template_page(outcome))


async def templates_host(serving: Serving) -> Seen:
    async with serving(pdf_allowed_hosts="storage.example") as app:
        token = await app.init()
        call = frontend.generate_template(f"{app.pdf_base}/resume.pdf", INSTRUCTIONS)
        outcome = await pages.mutate(app.client, call, token)
        return seen(outcome, pages.template_page(outcome))


async def queue_pending(serving: Serving) -> Seen:
    async with serving(scribe_queue_max_pending=3) as app:
        token = await app.init()
        await enqueue(app.pool, await _user_id(app), ["x"] * 3)
        call = frontend.submit_batch(["Dr. Ada Lovelace"], "computing", TEMPLATE)
        outcome = await pages.mutate(app.client, call, token)
        assert outcome.failure is not None
        assert "at most 3 can be pending at once" in outcome.failure.message
        assert "cancel" not in outcome.failure.message
        assert await app.pool.fetchval("SELECT count(*) FROM queue_items") == 3
        return seen(outcome, pages.generate_page(outcome))


async def queue_daily(serving: Serving) -> Seen:
    async with serving(scribe_queue_daily_items=3) as app:
        token = await app.init()
        items = await enqueue(app.pool, await _user_id(app), ["x"] * 3)
        await app.pool.execute("UPDATE queue_items SET status = 'cancelled'")
        call = frontend.submit_batch(["Dr. Ada Lovelace"], "computing", TEMPLATE)
        outcome = await pages.mutate(app.client, call, token)
        assert outcome.failure is not None
        assert "at most 3 emails can be queued per day" in outcome.failure.message
        assert await app.pool.fetchval("SELECT count(*) FROM queue_items") == len(items)
        return seen(outcome, pages.generate_page(outcome))


async def queue_short_template(serving: Serving) -> Seen:
    async with serving() as app:
        token = await app.init()
        call = frontend.submit_batch(["Dr. Ada Lovelace"], "computing", "Hi {{x}}")
        outcome = await pages.mutate(app.client, call, token)
        assert outcome.failure is not None and "too short" in outcome.failure.message
        return seen(outcome, pages.generate_page(outcome))


async def init_address(serving: Serving) -> Seen:
    async with serving() as app:
        outcome = await app.client.send(frontend.init_user("Jörg"), token_for("jörg@münchen.de"))
        assert await app.pool.fetchval("SELECT count(*) FROM users") == 0
        return seen(outcome, pages.account_setup(outcome))


async def init_taken(serving: Serving) -> Seen:
    async with serving() as app:
        await app.init()
        other = token_for(STUDENT, uuid.uuid4())
        outcome = await app.client.send(frontend.init_user("Someone"), other)
        return seen(outcome, pages.account_setup(outcome))


async def cancel_finished(serving: Serving) -> Seen:
    async with serving() as app:
        token = await app.init()
        [item] = await enqueue(app.pool, await _user_id(app), ["x"])
        await app.pool.execute("UPDATE queue_items SET status = 'completed'")
        outcome = await pages.mutate(app.client, frontend.cancel_item(str(item)), token)
        assert outcome.failure is not None
        assert outcome.failure.message == "Cannot cancel item with status 'completed'."
        return seen(outcome, pages.cancel_toast(outcome))


async def admin_forbidden(serving: Serving) -> Seen:
    async with serving() as app:
        outcome = await app.client.send(frontend.admin_users(), await app.init())
        return seen(outcome, pages.admin_page(outcome))


async def admin_unreadable_address(serving: Serving) -> Seen:
    async with serving() as app:
        await create_user(app.pool, "root@localhost")
        outcome = await app.client.send(frontend.admin_users(), token_for(ADMIN))
        assert outcome.failure is None
        return Seen(200, pages.admin_page(outcome), outcome.fetches)


async def _user_id(app: Served) -> uuid.UUID:
    user_id: uuid.UUID = await app.pool.fetchval("SELECT id FROM users")
    return user_id


CASES: dict[str, Callable[[Serving], Awaitable[Seen]]] = {
    "templates-cap": templates_cap,
    "templates-daily": templates_daily,
    "templates-in-flight": templates_in_flight,
    "templates-unreadable": templates_unreadable,
    "templates-host": templates_host,
    "queue-pending": queue_pending,
    "queue-daily": queue_daily,
    "queue-short-template": queue_short_template,
    "init-address": init_address,
    "init-taken": init_taken,
    "cancel-finished": cancel_finished,
    "admin-forbidden": admin_forbidden,
    "admin-unreadable-address": admin_unreadable_address,
}


def table_row(case: str) -> dict[str, str]:
    """The row of docs/refusals.md for ``case``: its cells by column name."""
    lines = [line for line in TABLE.read_text().splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] == f"`{case}`":
            return dict(zip(header, cells, strict=True))
    raise AssertionError(f"{case} is not in {TABLE.name}")


def matches(documented: str, shown: str) -> bool:
    """Whether the text a page shows fits the table's cell: the quoted text, where "…" stands
    for a part that varies (counts, hours)."""
    quoted = re.fullmatch(r"“(.*)”.*", documented)
    assert quoted, documented
    pattern = ".*".join(re.escape(part) for part in quoted.group(1).split("…"))
    return re.fullmatch(pattern, shown) is not None


@pytest.mark.parametrize("case", list(CASES))
async def test_each_refusal_reads_as_the_table_says(serving: Serving, case: str) -> None:
    met = await CASES[case](serving)
    row = table_row(case)
    assert row["Status"] == str(met.status), (row, met)
    assert matches(row["The page shows"], met.shown), (row, met)
    assert row["Requests"] == str(met.requests), (row, met)


def test_every_row_of_the_table_is_tested() -> None:
    lines = TABLE.read_text().splitlines()
    cases = re.findall(r"^\| `([a-z-]+)` \|", "\n".join(lines), flags=re.MULTILINE)
    assert sorted(cases) == sorted(CASES)
