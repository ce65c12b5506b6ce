"""Supabase JWT verification over HTTP, against a local JWKS fake (DESIGN §7)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from scribe.settings import Settings
from tests.conftest import TEST_JWT_SECRET, serve
from tests.fakes.jwks import FakeJwks, new_key, serve_jwks


@pytest.fixture
def jwks() -> Iterator[FakeJwks]:
    with serve_jwks() as fake:
        yield fake


@pytest.fixture
def settings(make_settings: Callable[..., Settings], jwks: FakeJwks) -> Settings:
    """Both verification paths configured, as on a Supabase project with legacy and new keys."""
    return make_settings(supabase_url=jwks.base_url, supabase_jwt_secret=TEST_JWT_SECRET)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())


def _hs256(jwks: FakeJwks, **overrides: Any) -> str:
    return jwt.encode(jwks.claims(**overrides), TEST_JWT_SECRET, algorithm="HS256")


async def _init(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(
        "/api/user/init", json={}, headers={"Authorization": f"Bearer {token}"}
    )


async def _assert_rejected(client: httpx.AsyncClient, token: str) -> str:
    response = await _init(client, token)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    return detail


async def test_valid_hs256_token_is_accepted(client: httpx.AsyncClient, jwks: FakeJwks) -> None:
    sub = uuid.uuid4()
    response = await _init(client, _hs256(jwks, sub=str(sub)))
    assert response.status_code == 201
    assert response.json()["id"] == str(sub)
    assert jwks.requests == 0  # HS256 never needs the JWKS


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
async def test_valid_asymmetric_token_is_accepted(
    client: httpx.AsyncClient, jwks: FakeJwks, algorithm: str
) -> None:
    key = jwks.es256 if algorithm == "ES256" else jwks.rs256
    sub = uuid.uuid4()
    response = await _init(client, jwks.sign(key, sub=str(sub), email="Ada@Uni.edu"))
    assert response.status_code == 201
    assert response.json()["id"] == str(sub)
    assert response.json()["email"] == "ada@uni.edu"


async def test_jwks_is_cached_between_requests(client: httpx.AsyncClient, jwks: FakeJwks) -> None:
    for _ in range(3):
        assert (await _init(client, jwks.sign(jwks.es256))).status_code == 201
    assert jwks.requests == 1


async def test_expired_token_is_401(client: httpx.AsyncClient, jwks: FakeJwks) -> None:
    token = jwks.sign(jwks.es256, iat=1_700_000_000, exp=1_700_000_060)
    assert "expired" in await _assert_rejected(client, token)
    assert "expired" in await _assert_rejected(client, _hs256(jwks, exp=1_700_000_060))


async def test_not_yet_valid_token_is_401(client: httpx.AsyncClient, jwks: FakeJwks) -> None:
    future = jwks.claims()["iat"] + 600
    await _assert_rejected(client, jwks.sign(jwks.es256, nbf=future))
    await _assert_rejected(client, _hs256(jwks, nbf=future))


async def test_wrong_audience_is_401(client: httpx.AsyncClient, jwks: FakeJwks) -> None:
    await _assert_rejected(client, jwks.sign(jwks.es256, aud="anon"))
    await _assert_rejected(client, _hs256(jwks, aud=None))


async def test_wrong_or_missing_issuer_is_401(client: httpx.AsyncClient, jwks: FakeJwks) -> None:
    await _assert_rejected(client, jwks.sign(jwks.es256, iss="https://evil.example/auth/v1"))
    await _assert_rejected(client, _hs256(jwks, iss="https://other.supabase.co/auth/v1"))
    await _assert_rejected(client, jwks.sign(jwks.es256, iss=None))
    await _assert_rejected(client, _hs256(jwks, iss=None))


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_unsigned_alg_none_token_is_401(
    client: httpx.AsyncClient, jwks: FakeJwks, alg: str
) -> None:
    token = _unsigned({"alg": alg, "typ": "JWT", "kid": jwks.es256.kid}, jwks.claims()) + "."
    await _assert_rejected(client, token)


@pytest.mark.parametrize("material", ["pem", "jwk"])
async def test_hs256_signed_with_the_jwks_public_key_is_401(
    client: httpx.AsyncClient, jwks: FakeJwks, material: str
) -> None:
    """The algorithm-confusion attack: the public key used as an HMAC secret."""
    public_key = jwks.es256.private_key.public_key()
    secret = (
        public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if material == "pem"
        else json.dumps(jwks.es256.public_jwk()).encode()
    )
    signing_input = _unsigned({"alg": "HS256", "typ": "JWT", "kid": jwks.es256.kid}, jwks.claims())
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    await _assert_rejected(client, f"{signing_input}.{_b64(signature)}")


async def test_hs256_without_a_configured_secret_is_401(
    make_settings: Callable[..., Settings], jwks: FakeJwks
) -> None:
    """With only SUPABASE_URL set, HS256 is not an accepted algorithm at all."""
    public_pem = jwks.es256.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = _unsigned({"alg": "HS256", "kid": jwks.es256.kid}, jwks.claims())
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    settings = make_settings(supabase_url=jwks.base_url, supabase_jwt_secret=None)
    async with serve(settings) as url, httpx.AsyncClient(base_url=url) as client:
        await _assert_rejected(client, f"{signing_input}.{_b64(signature)}")
        assert (await _init(client, jwks.sign(jwks.es256))).status_code == 201


async def test_tampered_signature_or_claims_is_401(
    client: httpx.AsyncClient, jwks: FakeJwks
) -> None:
    token = jwks.sign(jwks.es256)
    header, payload, signature = token.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    await _assert_rejected(client, f"{header}.{payload}.{flipped}")
    forged = _b64(json.dumps(jwks.claims(sub=str(uuid.uuid4()))).encode())
    await _assert_rejected(client, f"{header}.{forged}.{signature}")
    hs_header, hs_payload, _ = _hs256(jwks).split(".")
    await _assert_rejected(client, f"{hs_header}.{hs_payload}.{_b64(b'x' * 32)}")


async def test_algorithm_not_matching_its_key_is_401(
    client: httpx.AsyncClient, jwks: FakeJwks
) -> None:
    """An RS256 token naming the ES256 key's kid: the key pins the algorithm."""
    token = jwt.encode(
        jwks.claims(), jwks.rs256.private_key, algorithm="RS256", headers={"kid": jwks.es256.kid}
    )
    assert "algorithm" in await _assert_rejected(client, token)


async def test_unknown_kid_refetches_once_then_401(
    client: httpx.AsyncClient, jwks: FakeJwks
) -> None:
    assert (await _init(client, jwks.sign(jwks.es256))).status_code == 201
    assert jwks.requests == 1
    stranger = new_key("ES256")
    assert "unknown signing key" in await _assert_rejected(client, jwks.sign(stranger))
    assert jwks.requests == 2
    # More made-up kids right after do not reach the identity provider again.
    await _assert_rejected(client, jwks.sign(stranger))
    await _assert_rejected(client, jwks.sign(new_key("ES256")))
    assert jwks.requests == 2


async def test_rotated_key_is_picked_up_by_one_refetch(
    client: httpx.AsyncClient, jwks: FakeJwks
) -> None:
    assert (await _init(client, jwks.sign(jwks.es256))).status_code == 201
    old = jwks.es256
    fresh = jwks.rotate()
    assert (await _init(client, jwks.sign(fresh))).status_code == 201
    assert jwks.requests == 2
    # The retired key is gone from the JWKS, so its tokens no longer verify.
    await _assert_rejected(client, jwks.sign(old))


async def test_missing_sub_is_401(client: httpx.AsyncClient, jwks: FakeJwks) -> None:
    await _assert_rejected(client, jwks.sign(jwks.es256, sub=None))
    await _assert_rejected(client, _hs256(jwks, sub=None))
    await _assert_rejected(client, _hs256(jwks, sub="not-a-uuid"))


async def test_anon_role_is_401(client: httpx.AsyncClient, jwks: FakeJwks) -> None:
    assert "role" in await _assert_rejected(client, jwks.sign(jwks.es256, role="anon"))
    await _assert_rejected(client, _hs256(jwks, role="service_role"))
    await _assert_rejected(client, _hs256(jwks, role=None))


async def test_jwks_down_is_503_not_401(
    client: httpx.AsyncClient, jwks: FakeJwks, caplog: pytest.LogCaptureFixture
) -> None:
    jwks.down = True
    response = await _init(client, jwks.sign(jwks.es256))
    assert response.status_code == 503
    assert "unavailable" in response.json()["detail"]
    assert jwks.requests == 1
    # An outage is expected weather: warning lines, no error tracebacks per request.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    # HS256 tokens do not depend on the JWKS and keep working during the outage.
    assert (await _init(client, _hs256(jwks))).status_code == 201
    # Within the backoff after a failure, ES256 requests answer 503 without another fetch
    # (recovery after the backoff: tests/acceptance/test_jwks_cache.py, with a controlled clock).
    jwks.down = False
    assert (await _init(client, jwks.sign(jwks.es256))).status_code == 503
    assert jwks.requests == 1


async def test_cached_key_survives_a_jwks_outage(client: httpx.AsyncClient, jwks: FakeJwks) -> None:
    assert (await _init(client, jwks.sign(jwks.es256))).status_code == 201
    jwks.down = True
    assert (await _init(client, jwks.sign(jwks.es256))).status_code == 201


@pytest.fixture
async def unreachable_client(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client of an app whose SUPABASE_URL refuses connections, and that URL's issuer."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings = make_settings(supabase_url=f"http://127.0.0.1:{closed_port}")
    async with serve(settings) as url, httpx.AsyncClient(base_url=url) as client:
        yield client, f"http://127.0.0.1:{closed_port}/auth/v1"


async def test_jwks_connection_refused_is_503(
    unreachable_client: tuple[httpx.AsyncClient, str],
) -> None:
    client, issuer = unreachable_client
    now = int(time.time())
    claims = {
        "sub": str(uuid.uuid4()),
        "aud": "authenticated",
        "role": "authenticated",
        "iss": issuer,
        "exp": now + 600,
    }
    token = jwt.encode(
        claims,
        new_key("ES256").private_key,
        algorithm="ES256",
        headers={"kid": "k1"},
    )
    response = await _init(client, token)
    assert response.status_code == 503
    assert set(response.json()) == {"detail"}


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer garbage", "Bearer a.b.c", "x"],
)
async def test_missing_or_garbage_authorization_is_401_json(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in [("GET", "/api/user/profile"), ("GET", "/api/email/")]:
        response = await client.request(method, path, headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/json"
        assert set(response.json()) == {"detail"}
