"""Supabase JWT verification, done locally.

HS256 tokens are checked with ``SUPABASE_JWT_SECRET``; ES256/RS256 tokens with the project's JWKS
(``{SUPABASE_URL}/auth/v1/.well-known/jwks.json``), fetched with httpx (never blocking the loop),
cached, and refetched once when a token names an unknown ``kid``. The algorithm is pinned by the
key, never taken from the token alone. A JWKS outage raises AuthUnavailable (503), not 401.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt

from scribe.errors import AuthenticationError, AuthUnavailable

log = logging.getLogger(__name__)

AUDIENCE = "authenticated"
_ASYMMETRIC = {"ES256": "EC", "RS256": "RSA"}
_JWKS_MISS_COOLDOWN_SECONDS = 30.0  # at most one refetch per 30 s caused by unknown kids
_JWKS_MAX_AGE_SECONDS = 600.0
DEV_ISSUER = "scribe-dev"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, from a verified token."""

    user_id: uuid.UUID
    email: str  # lower-case; "" only from verify(require_email=False) on a token without one


class JwksCache:
    """The JWKS document, fetched lazily, refreshed when old, and refetched on an unknown ``kid``.

    A token naming a kid the cache lacks triggers one refetch (that is how a rotated-in key is
    picked up at once); further unknown kids within a cooldown do not, so a stream of tokens with
    made-up kids cannot turn into a stream of requests to the identity provider.
    """

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self._url = url
        self._http = http
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._miss_refetched_at = float("-inf")
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return time.monotonic() - self._fetched_at < _JWKS_MAX_AGE_SECONDS

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The key for ``kid``, or None if the JWKS lacks it; AuthUnavailable when it cannot be
        fetched and no cached key can stand in."""
        if kid in self._keys and self._fresh():
            return self._keys[kid]
        async with self._lock:  # one fetch at a time; waiters reuse its result
            if kid in self._keys and self._fresh():
                return self._keys[kid]
            if not self._fresh():
                await self._refresh_or_keep(kid)
            elif kid not in self._keys:
                now = time.monotonic()
                if now - self._miss_refetched_at >= _JWKS_MISS_COOLDOWN_SECONDS:
                    self._miss_refetched_at = now
                    await self._refresh()
            return self._keys.get(kid)

    async def _refresh_or_keep(self, kid: str) -> None:
        """Refresh an old (or never fetched) document; keep serving a cached key if that fails."""
        try:
            await self._refresh()
        except AuthUnavailable:
            if kid not in self._keys:
                raise
            log.warning("JWKS refresh failed; using the cached key %s", kid)

    async def _refresh(self) -> None:
        try:
            response = await self._http.get(self._url, timeout=5.0)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise AuthUnavailable(
                "The authentication service is unavailable; try again shortly."
            ) from exc
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            try:
                key = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                log.warning("ignoring an unusable JWKS entry (kid=%s)", entry.get("kid"))
                continue
            if key.key_id:
                keys[key.key_id] = key
        self._keys = keys
        self._fetched_at = time.monotonic()


class TokenVerifier:
    """Verifies bearer tokens and returns the Principal they name."""

    def __init__(
        self,
        *,
        hs256_secret: str | None,
        issuer: str | None,
        jwks: JwksCache | None,
    ) -> None:
        self._secret = hs256_secret
        self._issuer = issuer
        self._jwks = jwks

    async def verify(self, token: str, *, require_email: bool = True) -> Principal:
        """Check signature, algorithm, exp/nbf, aud, iss and role; raise AuthenticationError.

        Without ``require_email`` a token lacking an email claim is accepted with an empty
        ``email`` (the admin routes answer such a caller 403, not 401)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthenticationError("Invalid token: malformed") from exc
        algorithm = header.get("alg")
        key: Any
        if algorithm == "HS256" and self._secret is not None:
            key = self._secret
        elif algorithm in _ASYMMETRIC and self._jwks is not None:
            kid = header.get("kid")
            if not isinstance(kid, str):
                raise AuthenticationError("Invalid token: no key id")
            jwk = await self._jwks.key(kid)
            if jwk is None:
                raise AuthenticationError("Invalid token: unknown signing key")
            if jwk.key_type != _ASYMMETRIC[algorithm] or jwk.algorithm_name != algorithm:
                raise AuthenticationError("Invalid token: algorithm does not match its key")
            key = jwk.key
        else:
            raise AuthenticationError("Invalid token: unsupported algorithm")
        return self._decode(token, key, algorithm, require_email)

    def _decode(self, token: str, key: Any, algorithm: str, require_email: bool) -> Principal:
        options: jwt.types.Options = {"require": ["exp", "sub", "aud"]}
        if self._issuer:
            options["require"].append("iss")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=AUDIENCE,
                issuer=self._issuer,
                options=options,
                leeway=5,
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("Invalid token: expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"Invalid token: {exc}") from exc
        if claims.get("role") != "authenticated":
            raise AuthenticationError("Invalid token: role must be 'authenticated'")
        try:
            user_id = uuid.UUID(str(claims["sub"]))
        except ValueError as exc:
            raise AuthenticationError("Invalid token: subject is not a user id") from exc
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            if require_email:
                raise AuthenticationError("Invalid token: no email claim")
            email = ""
        return Principal(user_id=user_id, email=email.lower())


def is_admin(principal: Principal, admin_emails: list[str]) -> bool:
    """Whether the caller's (verified) email is one of ``ADMIN_EMAILS`` (trimmed, lower-case)."""
    email = principal.email.strip().lower()
    return bool(email) and email in admin_emails


def dev_secret(data_dir: Path) -> str:
    """The local development secret (created on first use, kept in the data dir, mode 0600)."""
    path = data_dir / "dev-jwt-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def mint_token(
    secret: str,
    *,
    email: str,
    user_id: uuid.UUID | None = None,
    issuer: str | None = DEV_ISSUER,
    lifetime_seconds: int = 3600,
) -> str:
    """An HS256 token shaped like Supabase's, for local development and tests."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(user_id or uuid.uuid5(uuid.NAMESPACE_URL, f"mailto:{email.lower()}")),
        "email": email,
        "aud": AUDIENCE,
        "role": "authenticated",
        "iat": now,
        "exp": now + lifetime_seconds,
    }
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")
