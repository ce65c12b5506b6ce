"""Each route declared once, as an ``Operation`` (method, path, handler and what the docs say);
the app's routes, the OpenAPI 3.1 document and a self-contained docs page (no CDN: the Pi may sit
behind a tunnel with no outside assets) are all derived from the operations."""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from scribe import __version__

Endpoint = Callable[[Request], Awaitable[Response]]

_REF = "#/components/schemas/{model}"
_ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
# 422 answers list every problem (FastAPI's shape, which the frontend reads).
_VALIDATION_ERROR = {
    "type": "object",
    "properties": {
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
                "required": ["loc", "msg", "type"],
            },
        }
    },
    "required": ["detail"],
}


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path: the endpoint that answers it and what the docs say about it."""

    method: str
    path: str
    summary: str
    response: type[BaseModel] | None = None
    response_list: bool = False
    status: int = 200
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    auth: bool = True
    content_type: str = "application/json"
    also: tuple[int, ...] = ()  # other success statuses with the same body (e.g. 200 beside 201)
    headers: tuple[str, ...] = ()  # optional request headers it reads (string values)
    endpoint: Endpoint = field(kw_only=True)

    def route(self) -> Route:
        """The Starlette route serving this operation."""
        return Route(self.path, self.endpoint, methods=[self.method])


def _response_schema(op: Operation) -> dict[str, Any]:
    if op.response is None:
        return {"type": "object"}
    ref = {"$ref": _REF.format(model=op.response.__name__)}
    return {"type": "array", "items": ref} if op.response_list else ref


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
        for part in op.path.split("/")
        if part.startswith("{")
    ]
    params += [
        {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
        for name in op.headers
    ]
    if op.query is not None:
        schema = op.query.model_json_schema()
        for name, prop in schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": False, "schema": prop})
    return params


def _operation(op: Operation) -> dict[str, Any]:
    success = {
        "description": "Success",
        "content": {op.content_type: {"schema": _response_schema(op)}},
    }
    responses: dict[str, Any] = {str(status): success for status in (op.status, *op.also)}
    parameters = _parameters(op)
    if parameters or op.body is not None:
        responses["422"] = {
            "description": "Invalid input: every problem, with its location",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ValidationError"}}
            },
        }
    responses["default"] = {
        "description": "Error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    doc: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{op.method.lower()}_{op.path.strip('/').replace('/', '_') or 'root'}",
        "parameters": parameters,
        "responses": responses,
    }
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": _REF.format(model=op.body.__name__)}}
            },
        }
    if op.auth:
        doc["security"] = [{"bearer": []}]
    return doc


def build_openapi(operations: Iterable[Operation]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these operations."""
    ops = list(operations)
    models: list[tuple[type[BaseModel], Any]] = []
    for op in ops:
        if op.response is not None:
            models.append((op.response, "serialization"))
        if op.body is not None:
            models.append((op.body, "validation"))
    _, schemas = models_json_schema(models, ref_template=_REF)
    components = dict(schemas.get("$defs", {}))
    components["Error"] = _ERROR
    components["ValidationError"] = _VALIDATION_ERROR
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Scribe API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def render_docs(document: dict[str, Any]) -> str:
    """A plain HTML page listing every operation and schema of ``document``."""
    rows = []
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            rows.append(
                f"<h3><code>{method.upper()} {html.escape(path)}</code></h3>"
                f"<p>{html.escape(op['summary'])}</p>"
                f"<pre>{html.escape(json.dumps(op, indent=2))}</pre>"
            )
    schemas = html.escape(json.dumps(document["components"]["schemas"], indent=2))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Scribe API</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem}pre{background:#f4f4f4;padding:.5rem;overflow:auto;font-size:.8rem}"
        "</style></head><body><h1>Scribe API</h1>"
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a> (OpenAPI 3.1). "
        "Authenticate with <code>Authorization: Bearer &lt;Supabase JWT&gt;</code>.</p>"
        + "".join(rows)
        + f"<h2>Schemas</h2><pre>{schemas}</pre></body></html>"
    )


def docs_operations(operations: Iterable[Operation]) -> list[Operation]:
    """``/openapi.json`` and ``/docs``, describing ``operations`` and themselves. The document is
    built on the first request for either (it would add ~25 ms to every start), then kept."""
    described = list(operations)

    @functools.cache
    def document() -> dict[str, Any]:
        return build_openapi([*described, *own])

    @functools.cache
    def page() -> str:
        return render_docs(document())

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(document())

    async def docs(request: Request) -> Response:
        return HTMLResponse(page())

    own = [
        Operation(
            "GET", "/openapi.json", "This OpenAPI document.", auth=False, endpoint=openapi_json
        ),
        Operation(
            "GET",
            "/docs",
            "Human-readable API docs.",
            auth=False,
            content_type="text/html",
            endpoint=docs,
        ),
    ]
    return own
