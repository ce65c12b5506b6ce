"""/openapi.json, /docs and /metrics over HTTP."""

from __future__ import annotations

import httpx
from starlette.routing import Route

from scribe.app import create_app
from scribe.settings import Settings
from tests.conftest import auth_headers


def _route_methods(settings: Settings) -> set[tuple[str, str]]:
    app = create_app(settings)
    pairs = set()
    for route in app.routes:
        assert isinstance(route, Route)
        for method in route.methods or ():
            if method != "HEAD":
                pairs.add((method, route.path))
    return pairs


async def test_openapi_documents_every_route(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    assert documented == _route_methods(settings)
    profile = document["components"]["schemas"]["Profile"]
    assert set(profile["required"]) >= {"id", "email", "display_name", "created_at"}


async def test_docs_page_is_self_contained(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/api/user/profile" in response.text
    assert "<script src=" not in response.text


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    headers = auth_headers("metrics@uni.edu")
    await client.post("/api/user/init", json={}, headers=headers)
    await client.get("/api/email/00000000-0000-0000-0000-000000000000", headers=headers)
    response = await client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert 'route="/api/email/{email_id}",status="404"' in text
    assert 'route="/api/user/init",status="201"' in text
    assert 'scribe_queue_items{status="pending"} 0.0' in text


async def test_metrics_labels_stay_bounded_whatever_methods_clients_send(
    client: httpx.AsyncClient,
) -> None:
    for method in ("PROPFIND", "MKCOL", "PURGE", "LOCK"):
        await client.request(method, "/api/email/")
    text = (await client.get("/metrics")).text
    assert not any(method in text for method in ("PROPFIND", "MKCOL", "PURGE", "LOCK"))
    assert 'method="OTHER"' in text
