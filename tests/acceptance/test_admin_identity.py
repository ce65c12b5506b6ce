"""Admin rights and the queue-quota exemption over HTTP, with tokens shaped like Supabase's:
an admin address counts only when the token says it is verified and not anonymous and it is
the admin's address without Unicode look-alikes; a listed user id counts on its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from scribe.http.auth import mint_token
from scribe.settings import Settings
from tests.conftest import TEST_JWT_SECRET, serve
from tests.fakes.jwks import FakeJwks, serve_jwks

ADMIN_EMAIL = "kelvin@example.com"
ADMIN_ID = uuid.uuid4()
TEMPLATE = (
    "Dear {{name}}, I read your recent work on {{topic}} with great interest and would love "
    "to ask two short questions about it."
)
TWO_ITEMS = {
    "email_template": TEMPLATE,
    "items": [{"recipient_name": f"Prof. R{n}", "recipient_interest": "widgets"} for n in (1, 2)],
}


@pytest.fixture
def jwks() -> Iterator[FakeJwks]:
    with serve_jwks() as fake:
        yield fake


@pytest.fixture
async def api(
    make_settings: Callable[..., Settings], jwks: FakeJwks
) -> AsyncIterator[httpx.AsyncClient]:
    """Admins by address and by id; a quota of one pending item, so an exemption shows."""
    settings = make_settings(
        supabase_url=jwks.base_url,
        admin_emails=ADMIN_EMAIL,
        admin_user_ids=str(ADMIN_ID),
        scribe_worker=False,
        scribe_queue_max_pending=1,
    )
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hs256(
    jwks: FakeJwks, email: str, user_id: uuid.UUID | None = None, **claims: Any
) -> dict[str, str]:
    """An HS256 token (Supabase's legacy signing) for ``email``, under its own user id unless
    one is given (never the admin's by accident)."""
    user_id = user_id or uuid.uuid4()
    token = mint_token(TEST_JWT_SECRET, email=email, user_id=user_id, issuer=jwks.issuer, **claims)
    return bearer(token)


async def overview(api: httpx.AsyncClient, headers: dict[str, str]) -> int:
    return (await api.get("/api/admin/overview", headers=headers)).status_code


async def queue_two(api: httpx.AsyncClient, headers: dict[str, str]) -> int:
    """Queue two items (over the quota of one unless exempt); the status (or the profile's
    refusal: an address the frontend cannot show gets no profile, so it queues nothing)."""
    init = await api.post("/api/user/init", json={}, headers=headers)
    if init.status_code == 400:
        return 400
    assert init.status_code in (200, 201), init.text
    return (await api.post("/api/queue/batch", json=TWO_ITEMS, headers=headers)).status_code


async def test_a_verified_admin_address_is_an_admin_and_exempt(
    api: httpx.AsyncClient, jwks: FakeJwks
) -> None:
    admin = hs256(jwks, "Kelvin@Example.com")
    assert await overview(api, admin) == 200
    assert await queue_two(api, admin) == 201


@pytest.mark.parametrize(
    ("email", "claims"),
    [
        (ADMIN_EMAIL, {"email_verified": False}),
        (ADMIN_EMAIL, {"is_anonymous": True}),
        ("\u212aelvin@example.com", {}),  # KELVIN SIGN: lower() and NFKC both make it "k"
        ("\uff4belvin@example.com", {}),  # FULLWIDTH LATIN SMALL LETTER K
    ],
    ids=["unverified", "anonymous", "kelvin-sign", "fullwidth"],
)
async def test_an_admin_address_without_proof_is_neither_admin_nor_exempt(
    api: httpx.AsyncClient, jwks: FakeJwks, email: str, claims: dict[str, Any]
) -> None:
    headers = hs256(jwks, email, **claims)
    assert await overview(api, headers) == 403
    # Over the quota of one (not exempt), or no profile at all for a look-alike address.
    assert await queue_two(api, headers) in (400, 409)


async def test_supabase_signed_tokens_follow_user_metadata_unless_the_claim_is_top_level(
    api: httpx.AsyncClient, jwks: FakeJwks
) -> None:
    def es256(**claims: Any) -> dict[str, str]:
        return bearer(jwks.sign(jwks.es256, email=ADMIN_EMAIL, **claims))

    assert await overview(api, es256()) == 200  # user_metadata.email_verified: true
    unconfirmed = {"email": ADMIN_EMAIL, "email_verified": False}
    assert await overview(api, es256(user_metadata=unconfirmed)) == 403
    assert await overview(api, es256(user_metadata=None)) == 403  # no evidence at all
    assert await overview(api, es256(email_verified=False)) == 403  # a hook's claim decides
    assert await overview(api, es256(is_anonymous=True)) == 403


async def test_a_listed_user_id_is_an_admin_without_an_email(
    api: httpx.AsyncClient, jwks: FakeJwks
) -> None:
    no_email = bearer(jwks.sign(jwks.es256, sub=str(ADMIN_ID), email=None, user_metadata=None))
    assert await overview(api, no_email) == 200
    unverified = hs256(jwks, "someone@else.edu", ADMIN_ID, email_verified=False)
    assert await overview(api, unverified) == 200
    assert await queue_two(api, unverified) == 201
