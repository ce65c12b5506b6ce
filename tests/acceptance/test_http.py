"""Cross-cutting HTTP behaviour: JSON errors, body cap, CORS, request ids, health, index."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from scribe import __version__
from scribe.db.pool import Pool
from scribe.settings import Settings
from tests.conftest import auth_headers, serve
from tests.factories import init_user

ORIGIN = "https://app.example.com"
DATABASE_DOWN = "The database is unavailable; try again shortly."


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(allowed_origins=[ORIGIN], scribe_max_body_bytes=4096)


def _assert_json_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str)
    return body["detail"]


async def test_unknown_route_is_json_404(client: httpx.AsyncClient) -> None:
    for path in ("/nope", "/api/nothing/here", "/api/email/a/b"):
        _assert_json_error(await client.get(path), 404)


async def test_wrong_method_is_json_405(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/user/profile", headers=auth_headers("ada@uni.edu"))
    _assert_json_error(response, 405)
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}
    _assert_json_error(await client.post("/health"), 405)


async def test_unexpected_failure_is_json_500_without_internals(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    _, headers = await init_user(client, "ada@uni.edu")
    # Break the schema under the running app: the query now fails with an undefined table.
    await pool.execute("DROP TABLE emails")
    response = await client.get("/api/email/", headers=headers)
    assert _assert_json_error(response, 500) == "Internal server error"
    for internal in ("emails", "relation", "asyncpg", "Traceback", "SELECT"):
        assert internal not in response.text
    assert response.headers["x-request-id"]


async def test_500_carries_cors_and_request_id_headers(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    """A browser must be able to read the 500, not see a CORS failure."""
    _, headers = await init_user(client, "ada@uni.edu")
    await pool.execute("DROP TABLE emails")
    response = await client.get(
        "/api/email/", headers={**headers, "Origin": ORIGIN, "X-Request-ID": "req-500"}
    )
    _assert_json_error(response, 500)
    assert response.headers["x-request-id"] == "req-500"
    assert response.headers["access-control-allow-origin"] == ORIGIN


async def test_body_over_the_cap_by_content_length_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/user/init",
        content=b'{"display_name": "' + b"x" * 5000 + b'"}',
        headers={**auth_headers("ada@uni.edu"), "Content-Type": "application/json"},
    )
    assert "4096 bytes" in _assert_json_error(response, 413)
    assert (
        await client.get("/api/user/profile", headers=auth_headers("ada@uni.edu"))
    ).status_code == 403


async def test_chunked_body_over_the_cap_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"display_name": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = await client.post(
        "/api/user/init",
        content=chunks(),
        headers={**auth_headers("ada@uni.edu"), "Content-Type": "application/json"},
    )
    assert response.request.headers["transfer-encoding"] == "chunked"
    _assert_json_error(response, 413)


async def test_chunked_body_under_the_cap_is_read(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"display_name": '
        yield b'"Ada"}'

    response = await client.post(
        "/api/user/init", content=chunks(), headers=auth_headers("ada@uni.edu")
    )
    assert response.status_code == 201
    assert response.json()["display_name"] == "Ada"


async def test_invalid_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/user/init", content=b"{not json", headers=auth_headers("ada@uni.edu")
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body"] and error["type"] == "json_invalid"


async def test_deeply_nested_json_is_422_not_500(client: httpx.AsyncClient) -> None:
    body = b"[" * 2000 + b"]" * 2000  # under the 4096-byte cap; json.loads hits RecursionError
    response = await client.post(
        "/api/user/init", content=body, headers=auth_headers("ada@uni.edu")
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body"] and error["type"] == "json_invalid"


TEMPLATE = (
    "Dear {{professor_name}}, I recently read your work on {{research_area}} and would love "
    "to talk about joining your group this summer. Best regards, Alex"
)


@pytest.mark.parametrize(
    ("method", "path", "body", "loc"),
    [
        ("POST", "/api/user/init", {"display_name": "Ada\x00"}, ["body", "display_name"]),
        ("PATCH", "/api/user/template", {"template": TEMPLATE + "\x00"}, ["body", "template"]),
        (
            "POST",
            "/api/email/generate",
            {"email_template": TEMPLATE, "recipient_name": "Ada", "recipient_interest": "a\x00b"},
            ["body", "recipient_interest"],
        ),
        (
            "POST",
            "/api/queue/batch",
            {
                "email_template": TEMPLATE,
                "items": [{"recipient_name": "Grace\x00Hopper", "recipient_interest": "compilers"}],
            },
            ["body", "items", 0, "recipient_name"],
        ),
    ],
)
async def test_nul_characters_in_a_body_are_422_not_500(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, object], loc: list[object]
) -> None:
    """Postgres text cannot hold U+0000: the insert used to fail and answer 500."""
    _, headers = await init_user(client, "ada@uni.edu")
    response = await client.request(method, path, json=body, headers=headers)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == loc and error["type"] == "string_nul"


async def test_cors_preflight_from_an_allowed_origin(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/api/user/profile",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, content-type, x-request-id",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"authorization", "content-type", "x-request-id"} <= allowed
    assert "PATCH" in response.headers["access-control-allow-methods"]


async def test_cors_preflight_from_another_origin_is_not_echoed(
    client: httpx.AsyncClient,
) -> None:
    response = await client.options(
        "/api/user/profile",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    assert "evil" not in response.headers.get("access-control-allow-origin", "")


async def test_cors_on_simple_requests(client: httpx.AsyncClient) -> None:
    allowed = await client.get("/health", headers={"Origin": ORIGIN})
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()
    other = await client.get("/health", headers={"Origin": "https://evil.example"})
    assert other.status_code == 200
    assert "access-control-allow-origin" not in other.headers


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/health", headers={"X-Request-ID": "req-123"})
    assert echoed.headers["x-request-id"] == "req-123"
    on_error = await client.get("/nope", headers={"X-Request-ID": "req-404"})
    assert on_error.headers["x-request-id"] == "req-404"
    generated = await client.get("/health")
    assert len(generated.headers["x-request-id"]) == 32
    assert (
        generated.headers["x-request-id"] != (await client.get("/health")).headers["x-request-id"]
    )
    long = await client.get("/health", headers={"X-Request-ID": "r" * 500})
    assert long.headers["x-request-id"] == "r" * 128


async def test_health_reports_database_and_queue(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "healthy",
        "service": "scribe",
        "version": __version__,
        "database": "connected",
        "queue": {"pending": 0, "processing": 0},
        "providers": {},
        "waiting_on": {},
    }


@contextlib.asynccontextmanager
async def refusing_connections(pg_admin_dsn: str, database_url: str) -> AsyncIterator[None]:
    """The test database refuses new connections and the app's open ones are cut; restored on
    exit."""
    name = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def test_health_is_503_while_the_database_is_unreachable(
    client: httpx.AsyncClient, pg_admin_dsn: str, database_url: str
) -> None:
    async with refusing_connections(pg_admin_dsn, database_url):
        for _ in range(2):  # the dead pooled connection, then a refused reconnect
            down = await client.get("/health")
            assert down.status_code == 503
            assert down.json() == {
                "status": "unhealthy",
                "service": "scribe",
                "version": __version__,
                "database": "unreachable",
                "queue": None,
            }
    assert (await client.get("/health")).status_code == 200


async def test_metrics_say_the_database_is_down_instead_of_serving_the_last_queue_counts(
    client: httpx.AsyncClient, pg_admin_dsn: str, database_url: str
) -> None:
    up = (await client.get("/metrics")).text
    assert "scribe_database_up 1.0" in up
    assert 'scribe_queue_items{status="pending"} 0.0' in up
    assert 'scribe_provider_down{provider="anthropic"} 0.0' in up
    async with refusing_connections(pg_admin_dsn, database_url):
        for _ in range(2):  # the dead pooled connection, then a refused reconnect
            down = await client.get("/metrics")
            assert down.status_code == 200
            assert "scribe_database_up 0.0" in down.text
            assert "scribe_queue_items{" not in down.text
            assert "scribe_provider_down{" not in down.text
    back = (await client.get("/metrics")).text
    assert "scribe_database_up 1.0" in back
    assert 'scribe_queue_items{status="pending"} 0.0' in back


async def test_api_is_503_not_500_while_the_database_is_unreachable(
    client: httpx.AsyncClient, pg_admin_dsn: str, database_url: str
) -> None:
    headers = auth_headers("down@uni.edu")
    assert (await client.post("/api/user/init", json={}, headers=headers)).status_code == 201
    async with refusing_connections(pg_admin_dsn, database_url):
        for path in ("/api/user/profile", "/api/email/", "/api/templates/", "/api/queue/"):
            response = await client.get(path, headers=headers)
            assert response.status_code == 503, (path, response.text)
            assert response.json() == {"detail": DATABASE_DOWN}
    assert (await client.get("/api/user/profile", headers=headers)).status_code == 200


async def test_database_outage_logs_one_warning_and_one_info_not_a_traceback_per_request(
    make_settings: Callable[..., Settings],
    pg_admin_dsn: str,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers = auth_headers("down@uni.edu")
    paths = ("/api/user/profile", "/api/email/", "/api/templates/", "/api/queue/")
    async with (
        serve(make_settings(scribe_worker=False)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        assert (await client.post("/api/user/init", json={}, headers=headers)).status_code == 201
        caplog.set_level(logging.INFO)
        caplog.clear()
        async with refusing_connections(pg_admin_dsn, database_url):
            for _ in range(3):
                for path in paths:
                    response = await client.get(path, headers=headers)
                    assert response.status_code == 503, (path, response.text)
                    # Exactly this text: no exception names (InternalClientError,
                    # FileNotFoundError…) reach the client.
                    assert response.json() == {"detail": DATABASE_DOWN}
        assert (await client.get("/api/user/profile", headers=headers)).status_code == 200
        assert (await client.get("/api/email/", headers=headers)).status_code == 200

    # The LISTEN connection (used by SSE streams) says once that it lost the database and once
    # that its first reconnect failed; everything else about the outage is the one line below.
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    others = [r for r in loud if r.name not in ("scribe.queue.listener", "asyncpg.pool")]
    assert [r.name for r in others] == ["scribe.db.outage"], [r.getMessage() for r in loud]
    assert others[0].getMessage().startswith("database unavailable (")
    assert len([r for r in loud if r.name == "scribe.queue.listener"]) <= 2
    assert not [r for r in caplog.records if r.exc_info]
    back = [r.getMessage() for r in caplog.records if r.name == "scribe.db.outage"][1:]
    assert len(back) == 1
    assert "available again" in back[0] and "12 request(s) were refused" in back[0]


async def test_index(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    body = response.json()
    assert body["service"] == "scribe" and body["version"] == __version__
    assert body["health"] == "/health"


async def test_app_with_default_settings_serves_localhost_origin(
    make_settings: Callable[..., Settings],
) -> None:
    async with serve(make_settings()) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/", headers={"Origin": "http://localhost:3000"})
        assert response.headers["access-control-allow-origin"] == "http://localhost:3000"


async def test_every_response_carries_nosniff(client: httpx.AsyncClient, pool: Pool) -> None:
    _, headers = await init_user(client, "ada@uni.edu")
    responses = [
        await client.get("/health"),
        await client.get("/nope"),
        await client.get("/docs"),
        await client.get("/openapi.json"),
        await client.get("/metrics"),
        await client.get("/"),
        await client.get("/api/user/profile"),  # 401
        await client.get("/api/user/profile", headers=headers),
        await client.post("/api/queue/batch", headers=headers, content=b"{"),  # 422
        await client.options(
            "/api/user/profile",
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
        ),
    ]
    await pool.execute("DROP TABLE emails")
    responses.append(await client.get("/api/email/", headers=headers))  # 500
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff", response.url
    async with client.stream("GET", "/api/queue/stream", headers=headers) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["x-content-type-options"] == "nosniff"


async def test_client_disconnecting_mid_body_is_one_info_line_not_an_error(
    base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    address = urlsplit(base_url)
    _reader, writer = await asyncio.open_connection(address.hostname, address.port)
    head = (
        "POST /api/user/init HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: {auth_headers('ada@uni.edu')['Authorization']}\r\n"
        "Content-Length: 2000\r\n\r\n"
    )
    writer.write(head.encode() + b'{"display_name": ')
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    deadline = asyncio.get_running_loop().time() + 10
    while not any("client disconnected" in r.getMessage() for r in caplog.records):
        assert asyncio.get_running_loop().time() < deadline, "the disconnect was not logged"
        await asyncio.sleep(0.01)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if r.exc_info]
