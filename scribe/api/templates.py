"""/api/templates: templates generated from a resume."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scribe.api.common import ApiModel, UtcDatetime, current_user, json_response, path_uuid
from scribe.api.openapi import Operation
from scribe.db import templates
from scribe.db.templates import Template
from scribe.deps import get_deps
from scribe.errors import NotFound


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


routes = [
    Route("/api/templates/", list_templates, methods=["GET"]),
    Route("/api/templates/{template_id}", get_template, methods=["GET"]),
]

operations = [
    Operation(
        "GET",
        "/api/templates/",
        "The caller's generated templates, newest first.",
        response=TemplateOut,
        response_list=True,
    ),
    Operation(
        "GET",
        "/api/templates/{template_id}",
        "One of the caller's templates.",
        response=TemplateOut,
    ),
]
