"""Helpers every API module uses: response rendering, body and parameter parsing, the caller."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer, ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from scribe.db import users
from scribe.db.users import User
from scribe.deps import get_deps
from scribe.errors import (
    AuthenticationError,
    DatabaseUnavailable,
    InvalidRequest,
    PayloadTooLarge,
    PermissionDenied,
    ProfileNotInitialized,
    RequestValidationFailed,
)
from scribe.http.auth import Principal, is_admin

log = logging.getLogger(__name__)

# The address check of the frontend's schemas (zod 4's ``z.string().email()``): ASCII only, a
# dot-separated domain ending in 2+ letters. Stored addresses that fail it break its pages.
_FRONTEND_EMAIL = re.compile(
    r"(?!\.)(?!.*\.\.)([A-Za-z0-9_'+\-\.]*)[A-Za-z0-9_+-]@([A-Za-z0-9][A-Za-z0-9\-]*\.)+[A-Za-z]{2,}"
)
MAX_EMAIL_LENGTH = 320  # RFC 5321's 64 + 1 + 255; longer claims are refused unread


def frontend_can_show(email: str) -> bool:
    """Whether the frontend's schema accepts this address (its pages fail on one it rejects)."""
    return len(email) <= MAX_EMAIL_LENGTH and _FRONTEND_EMAIL.fullmatch(email) is not None


def format_utc(value: datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` suffix (the frontend rejects ``+00:00``)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


UtcDatetime = Annotated[datetime, PlainSerializer(format_utc, return_type=str)]


class ApiModel(BaseModel):
    """Base of request and response bodies: unknown fields rejected, instances frozen; each
    model's validator is built on its first use (well under 1 ms each) rather than at import (the
    API's 32 models: ~20 ms of every start)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


BodyT = TypeVar("BodyT", bound=BaseModel)


def json_response(
    content: BaseModel | Sequence[BaseModel] | dict[str, Any],
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """Render a model, a list of models or a plain dict as JSON."""
    if isinstance(content, BaseModel):
        body = content.model_dump_json()
    elif isinstance(content, dict):
        body = json.dumps(content)
    else:
        body = "[" + ",".join(item.model_dump_json() for item in content) + "]"
    return Response(body, status_code=status, media_type="application/json", headers=headers)


RowT = TypeVar("RowT")


async def streamed_json_list(
    pages: AsyncGenerator[Sequence[RowT], None], render: Callable[[RowT], BaseModel]
) -> Response:
    """A JSON array of ``render(row)`` for every row of ``pages``, sent as the pages are read
    instead of built in memory: the same bytes ``json_response`` writes for the whole list.

    The first page is read before the answer starts, so a database that cannot be reached is
    still a 503. A later failure can no longer change the status: the body then ends before its
    closing bracket (invalid JSON, never a shorter list that looks whole), with one log line.
    """
    first = await anext(pages, None)
    return StreamingResponse(_json_array(first, pages, render), media_type="application/json")


async def _json_array(
    first: Sequence[RowT] | None,
    pages: AsyncGenerator[Sequence[RowT], None],
    render: Callable[[RowT], BaseModel],
) -> AsyncIterator[bytes]:
    separator = b"["
    async with contextlib.aclosing(pages):
        page = first
        try:
            while page is not None:
                for row in page:  # one row at a time: a slow reader holds at most one page
                    yield separator + render(row).model_dump_json().encode()
                    separator = b","
                page = await anext(pages, None)
        except DatabaseUnavailable as exc:
            log.warning("list answer cut short after its first page: %s", exc)
            return
    yield b"]" if separator == b"," else b"[]"


def validation_errors(exc: ValidationError, prefix: str) -> list[dict[str, Any]]:
    """Pydantic errors in the FastAPI-compatible shape the frontend expects."""
    return [
        {"loc": [prefix, *error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


# A body larger than this is decoded and validated in a worker thread: a 1 MB body of small
# JSON numbers or floats costs 70-220 ms of CPU to parse, which would stall every other request.
INLINE_BODY_BYTES = 64 * 1024


async def parse_body(request: Request, model: type[BodyT]) -> BodyT:
    """Read and validate a JSON body; 413 past the size cap, 422 when invalid."""
    limit = get_deps(request).settings.scribe_max_body_bytes
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > limit:
            raise PayloadTooLarge(f"Request body is larger than {limit} bytes.")
    if len(raw) > INLINE_BODY_BYTES:
        return await asyncio.to_thread(_decode_body, bytes(raw), model)
    return _decode_body(raw, model)


def _decode_body(raw: bytes | bytearray, model: type[BodyT]) -> BodyT:
    try:
        data = json.loads(raw) if raw else None
    except ValueError as exc:
        raise RequestValidationFailed(
            [{"loc": ["body"], "msg": f"Invalid JSON: {exc}", "type": "json_invalid"}]
        ) from exc
    except RecursionError as exc:  # a few kB of "[[[[…" fit under the body cap
        raise RequestValidationFailed(
            [{"loc": ["body"], "msg": "Invalid JSON: nested too deeply", "type": "json_invalid"}]
        ) from exc
    if data is None:
        raise RequestValidationFailed(
            [{"loc": ["body"], "msg": "Field required", "type": "missing"}]
        )
    if nul_errors := _nul_characters(data, ["body"]):
        raise RequestValidationFailed(nul_errors)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationFailed(validation_errors(exc, "body")) from exc


def _nul_characters(value: Any, loc: list[Any]) -> list[dict[str, Any]]:
    """422 errors for every string (key or value) holding U+0000, which Postgres text and jsonb
    cannot store: without this check the insert fails and the request answers 500."""
    if isinstance(value, str):
        return [] if "\x00" not in value else [_nul_error(loc)]
    errors: list[dict[str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            errors += [_nul_error([*loc, key])] if "\x00" in key else []
            errors += _nul_characters(item, [*loc, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            errors += _nul_characters(item, [*loc, index])
    return errors


def _nul_error(loc: list[Any]) -> dict[str, Any]:
    return {"loc": loc, "msg": "String must not contain NUL (\\u0000)", "type": "string_nul"}


def parse_query(request: Request, model: type[BodyT]) -> BodyT:
    """Validate query parameters against a model; 422 when invalid."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise RequestValidationFailed(validation_errors(exc, "query")) from exc


def path_uuid(request: Request, name: str) -> uuid.UUID:
    """A UUID path parameter; 400 when it is not a UUID."""
    raw = request.path_params[name]
    try:
        return uuid.UUID(str(raw))
    except ValueError as exc:
        raise InvalidRequest(f"Invalid {name}: {raw!r} is not a UUID.") from exc


async def current_principal(request: Request, *, require_email: bool = True) -> Principal:
    """The verified caller of this request; 401 without a valid bearer token (or, unless
    ``require_email`` is false, without an email claim). The token is verified once per
    request; later calls reuse the answer."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("Missing bearer token.")
        verifier = get_deps(request).verifier
        principal = await verifier.verify(token.strip(), require_email=False)
        request.state.principal = principal
    if require_email and not principal.email:
        raise AuthenticationError("Invalid token: no email claim")
    return principal


async def current_user(request: Request) -> User:
    """The caller's profile; 403 when they have not called POST /api/user/init yet."""
    principal = await current_principal(request)
    user = await users.get(get_deps(request).pool, principal.user_id)
    if user is None:
        raise ProfileNotInitialized()
    return user


async def current_admin(request: Request) -> Principal:
    """The verified caller when they are an admin (``scribe.http.auth.is_admin``:
    ``ADMIN_USER_IDS``, or a verified, non-anonymous email in ``ADMIN_EMAILS``); 401 without a
    valid token, 403 ``Admin access required`` otherwise (a token without an email too). No local
    user row is needed."""
    principal = await current_principal(request, require_email=False)
    if not is_admin(principal, get_deps(request).settings):
        raise PermissionDenied("Admin access required")
    return principal
