"""/api/user: profile creation and settings."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator
from starlette.requests import Request
from starlette.responses import Response

from scribe.api.common import (
    ApiModel,
    UtcDatetime,
    current_principal,
    current_user,
    frontend_can_show,
    json_response,
    parse_body,
)
from scribe.api.openapi import Operation
from scribe.db import users
from scribe.db.users import User
from scribe.deps import get_deps
from scribe.errors import InvalidRequest, ProfileNotInitialized

log = logging.getLogger(__name__)

UNUSABLE_EMAIL = (
    "Scribe cannot use the email address of this sign-in: it needs a plain address such as "
    "name@university.edu (ASCII letters only, a domain with a dot). Sign in with another account."
)


class Profile(ApiModel):
    """The user profile object of the API contract."""

    id: uuid.UUID
    email: str
    display_name: str | None
    generation_count: int
    template_count: int
    onboarded: bool
    email_template: str | None
    created_at: UtcDatetime

    @classmethod
    def of(cls, user: User) -> Profile:
        """The API view of a user row."""
        return cls.model_validate(user, from_attributes=True)


class InitBody(ApiModel):
    """POST /api/user/init."""

    display_name: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)] | None
    ) = None


class TemplateBody(ApiModel):
    """PATCH /api/user/template. The text is stored exactly as sent (the frontend reloads its
    textarea from the profile, so stripping would eat the newline the user just typed)."""

    template: Annotated[str, StringConstraints(min_length=1, max_length=10_000)] = Field(
        description="The default email template, stored verbatim; 1-10000 characters, not blank."
    )

    @field_validator("template")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("Template must not be blank.")
        return value


async def init_user(request: Request) -> Response:
    """Create the caller's profile (201), or return the existing one (200); 400 when the
    token's email is one the frontend cannot parse (every page showing the profile would fail)."""
    principal = await current_principal(request)
    body = await parse_body(request, InitBody)
    if not frontend_can_show(principal.email):
        log.info("profile refused: the sign-in address is not one the frontend accepts")
        raise InvalidRequest(UNUSABLE_EMAIL)
    user, created = await users.create(
        get_deps(request).pool, principal.user_id, principal.email, body.display_name or None
    )
    return json_response(Profile.of(user), 201 if created else 200)


async def get_profile(request: Request) -> Response:
    """The caller's profile."""
    return json_response(Profile.of(await current_user(request)))


async def complete_onboarding(request: Request) -> Response:
    """Mark the caller onboarded."""
    user = await current_user(request)
    updated = await users.set_onboarded(get_deps(request).pool, user.id)
    if updated is None:
        raise ProfileNotInitialized()
    return json_response(Profile.of(updated))


async def update_template(request: Request) -> Response:
    """Store the caller's default template."""
    user = await current_user(request)
    body = await parse_body(request, TemplateBody)
    updated = await users.set_template(get_deps(request).pool, user.id, body.template)
    if updated is None:
        raise ProfileNotInitialized()
    return json_response(Profile.of(updated))


operations = [
    Operation(
        "POST",
        "/api/user/init",
        "Create the caller's profile (201) or return it (200).",
        response=Profile,
        status=201,
        also=(200,),
        body=InitBody,
        endpoint=init_user,
    ),
    Operation(
        "GET",
        "/api/user/profile",
        "The caller's profile (403 before init).",
        response=Profile,
        endpoint=get_profile,
    ),
    Operation(
        "PATCH",
        "/api/user/onboarding",
        "Mark the caller onboarded.",
        response=Profile,
        endpoint=complete_onboarding,
    ),
    Operation(
        "PATCH",
        "/api/user/template",
        "Store the caller's default template.",
        response=Profile,
        body=TemplateBody,
        endpoint=update_template,
    ),
]
