"""/api/templates: templates generated from a resume (the generation itself:
scribe.api.template_generation)."""

from __future__ import annotations

import hashlib
import logging
import uuid

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from scribe.api.common import (
    ApiModel,
    UtcDatetime,
    current_user,
    json_response,
    parse_body,
    path_uuid,
)
from scribe.api.openapi import Operation
from scribe.api.template_generation import generate_template
from scribe.db import templates
from scribe.db.pool import Pool
from scribe.db.templates import Template
from scribe.deps import get_deps
from scribe.errors import DatabaseUnavailable, NotFound, QuotaExceeded

log = logging.getLogger(__name__)


class TemplateOut(ApiModel):
    """The template object of the API contract."""

    id: uuid.UUID
    user_id: uuid.UUID
    pdf_url: str
    template_text: str
    user_instructions: str
    created_at: UtcDatetime

    @classmethod
    def of(cls, template: Template) -> TemplateOut:
        """The API view of a template row."""
        return cls.model_validate(template, from_attributes=True)


class TemplateIn(ApiModel):
    """Body of POST /api/templates/."""

    pdf_url: str = Field(min_length=8, max_length=2048)
    user_instructions: str = Field(min_length=10, max_length=2000)


def request_fingerprint(body: TemplateIn) -> bytes:
    """What identifies a repeat of the same generation request: its PDF and instructions."""
    return hashlib.sha256(f"{body.pdf_url}\n{body.user_instructions}".encode()).digest()


def _limit_reached(limit: int) -> QuotaExceeded:
    log.info("template generation refused: the limit of %d templates is reached", limit)
    return QuotaExceeded(f"Template limit reached ({limit} per user).", retry_after=3600)


async def create_template(request: Request) -> Response:
    """Generate a template from the caller's resume; 429 at the per-user limit (the status
    the frontend reads as "Template limit reached").

    The limit is checked up front (no model call at the limit) and enforced atomically when the
    template is stored, so concurrent requests cannot exceed it and a failed generation uses no
    template slot. Each user has at most one generation in flight (409 for a second one), and
    every attempt, failed or not, counts toward SCRIBE_TEMPLATE_ATTEMPTS_PER_DAY (409 past it,
    with its own text): a PDF that fails to parse cannot be retried forever. The same request
    re-sent right after a failure (the frontend does it once by itself) does not count again.
    """
    user = await current_user(request)
    body = await parse_body(request, TemplateIn)
    deps = get_deps(request)
    limit = deps.settings.scribe_template_limit
    if user.template_count >= limit:
        raise _limit_reached(limit)
    attempt = await templates.start_attempt(
        deps.pool,
        user.id,
        daily_limit=deps.settings.scribe_template_attempts_per_day,
        fingerprint=request_fingerprint(body),
    )
    outcome = "failed"
    try:
        text = await generate_template(
            deps.clients,
            body.pdf_url,
            body.user_instructions,
            deps.settings.pdf_hosts,
            owner=str(user.id),
        )
        template = await templates.create_within_limit(
            deps.pool,
            user.id,
            pdf_url=body.pdf_url,
            template_text=text,
            user_instructions=body.user_instructions,
            limit=limit,
        )
        outcome = "limit" if template is None else "stored"
    finally:
        await _finish(deps.pool, attempt, outcome)
    if template is None:
        raise _limit_reached(limit)
    return json_response(TemplateOut.of(template), status=201)


async def _finish(pool: Pool, attempt: uuid.UUID, outcome: str) -> None:
    """Close the attempt; if the database is away, it is closed as stale later instead."""
    try:
        await templates.finish_attempt(pool, attempt, outcome)
    except DatabaseUnavailable:
        log.warning("template attempt %s not closed (database unavailable)", attempt)


async def list_templates(request: Request) -> Response:
    """The caller's templates, newest first."""
    user = await current_user(request)
    rows = await templates.list_for_user(get_deps(request).pool, user.id)
    return json_response([TemplateOut.of(row) for row in rows])


async def get_template(request: Request) -> Response:
    """One of the caller's templates; 404 otherwise."""
    user = await current_user(request)
    template = await templates.get(
        get_deps(request).pool, path_uuid(request, "template_id"), user.id
    )
    if template is None:
        raise NotFound("Template not found.")
    return json_response(TemplateOut.of(template))


operations = [
    Operation(
        "POST",
        "/api/templates/",
        "Generate a template from a resume PDF (limit: 5).",
        response=TemplateOut,
        status=201,
        body=TemplateIn,
        endpoint=create_template,
    ),
    Operation(
        "GET",
        "/api/templates/",
        "The caller's generated templates, newest first.",
        response=TemplateOut,
        response_list=True,
        endpoint=list_templates,
    ),
    Operation(
        "GET",
        "/api/templates/{template_id}",
        "One of the caller's templates.",
        response=TemplateOut,
        endpoint=get_template,
    ),
]
