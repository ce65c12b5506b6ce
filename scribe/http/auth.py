"""Supabase JWT verification, done locally.

HS256 tokens are checked with ``SUPABASE_JWT_SECRET``; ES256/RS256 tokens with the project's JWKS
(``{SUPABASE_URL}/auth/v1/.well-known/jwks.json``), fetched with httpx (never blocking the loop),
cached (stale-while-revalidate, single-flight refresh with backoff) and refetched at most once per
cooldown when a token names an unknown ``kid``. The algorithm is pinned by the
key, never taken from the token alone. A JWKS outage raises AuthUnavailable (503), not 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import jwt

from scribe.errors import AuthenticationError, AuthUnavailable

if TYPE_CHECKING:
    from scribe.settings import Settings

log = logging.getLogger(__name__)

AUDIENCE = "authenticated"
_ASYMMETRIC = {"ES256": "EC", "RS256": "RSA"}
_LEEWAY_SECONDS = 5
DEV_ISSUER = "scribe-dev"

# JWKS cache limits (see JwksCache).
JWKS_MISS_COOLDOWN_SECONDS = 30.0  # at most one refetch per 30 s caused by unknown kids
JWKS_MAX_AGE_SECONDS = 600.0  # a document older than this is refreshed in the background
JWKS_FETCH_TIMEOUT_SECONDS = 5.0  # one fetch, connect to last byte
JWKS_BACKOFF_BASE_SECONDS = 1.0  # after the n-th failure in a row, no fetch for base·2^(n-1) s
JWKS_BACKOFF_MAX_SECONDS = 60.0
JWKS_MAX_KEYS = 16  # keys kept from one document (Supabase publishes two or three)
JWKS_MAX_BYTES = 256 * 1024  # a larger document is a failed fetch


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, from a verified token."""

    user_id: uuid.UUID
    email: str  # lower-case; "" only from verify(require_email=False) on a token without one
    email_claim: str = ""  # the token's email claim exactly as signed (admin matching uses it)
    email_verified: bool = False  # see email_verified()
    is_anonymous: bool = False  # Supabase's anonymous sign-in; such a caller is never an admin


class JwksCache:
    """The JWKS document: fetched lazily, one fetch at a time, never waited for when not needed.

    - A cached key answers at once, even when the document is old (a refresh then starts in the
      background) or the provider is down: stale-while-revalidate.
    - Every fetch is one shared task (single flight): k requests arriving while the provider
      hangs all wait for the same fetch, at most ``fetch_timeout`` seconds, not k times that.
    - After a failed fetch no other starts for ``backoff_base·2^(n-1)`` seconds (n failures in a
      row, capped at ``backoff_max``): while the provider is down, requests answer 503 at once.
    - A kid the cache lacks triggers one refetch (how a rotated-in key is picked up); further
      unknown kids within ``miss_cooldown`` do not, for everyone together, so tokens with made-up
      kids cannot turn into a stream of requests to the identity provider.
    - At most JWKS_MAX_KEYS keys are kept, from a document of at most JWKS_MAX_BYTES.
    """

    def __init__(
        self,
        url: str,
        http: httpx.AsyncClient,
        *,
        miss_cooldown: float = JWKS_MISS_COOLDOWN_SECONDS,
        max_age: float = JWKS_MAX_AGE_SECONDS,
        fetch_timeout: float = JWKS_FETCH_TIMEOUT_SECONDS,
        backoff_base: float = JWKS_BACKOFF_BASE_SECONDS,
        backoff_max: float = JWKS_BACKOFF_MAX_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._http = http
        self._miss_cooldown = miss_cooldown
        self._max_age = max_age
        self._fetch_timeout = fetch_timeout
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")  # last successful fetch
        self._miss_refetched_at = float("-inf")
        self._failures = 0  # failed fetches in a row
        self._retry_at = float("-inf")  # no fetch starts before this (backoff)
        self._refresh: asyncio.Task[None] | None = None

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The key for ``kid``, or None if the JWKS lacks it; AuthUnavailable when the provider
        cannot be reached and no cached key can stand in."""
        now = self._clock()
        cached = self._keys.get(kid)
        if cached is not None:
            if now - self._fetched_at >= self._max_age:
                self._start_refresh(now)  # in the background: this request does not wait
            return cached
        task = self._refresh
        if task is None:
            if not self._may_fetch_for_unknown_kid(now):
                self._raise_if_failing()
                return None
            if self._fetched_at != float("-inf"):  # the first fetch is no refetch
                self._miss_refetched_at = now
            task = self._start_refresh(now)
        if task is not None:
            # shield: a waiter that is cancelled (client gone) does not cancel everyone's fetch
            await asyncio.shield(task)
        cached = self._keys.get(kid)
        if cached is None:
            self._raise_if_failing()
        return cached

    async def aclose(self) -> None:
        """Cancel a fetch in flight (shutdown)."""
        task, self._refresh = self._refresh, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _may_fetch_for_unknown_kid(self, now: float) -> bool:
        if now < self._retry_at:
            return False
        never_fetched = self._fetched_at == float("-inf")
        return never_fetched or now - self._miss_refetched_at >= self._miss_cooldown

    def _raise_if_failing(self) -> None:
        if self._failures:  # the provider is failing: we cannot tell whether a kid is real
            raise AuthUnavailable("The authentication service is unavailable; try again shortly.")

    def _start_refresh(self, now: float) -> asyncio.Task[None] | None:
        if self._refresh is not None:
            return self._refresh
        if now < self._retry_at:
            return None
        task = asyncio.create_task(self._run_refresh(), name="jwks-refresh")
        task.add_done_callback(self._refresh_done)
        self._refresh = task
        return task

    def _refresh_done(self, task: asyncio.Task[None]) -> None:
        if self._refresh is task:
            self._refresh = None
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("JWKS refresh crashed", exc_info=exc)

    async def _run_refresh(self) -> None:
        try:
            async with asyncio.timeout(self._fetch_timeout):
                keys = await self._fetch()
        except (httpx.HTTPError, ValueError, TimeoutError) as exc:
            self._failures += 1
            delay = min(self._backoff_max, self._backoff_base * 2 ** (self._failures - 1))
            self._retry_at = self._clock() + delay
            log.warning(
                "JWKS fetch failed (%s, %d in a row); next attempt in %.0f s",
                type(exc).__name__,
                self._failures,
                delay,
            )
            return
        self._keys = keys
        self._fetched_at = self._clock()
        self._failures = 0
        self._retry_at = float("-inf")

    async def _fetch(self) -> dict[str, jwt.PyJWK]:
        response = await self._http.get(self._url, timeout=self._fetch_timeout)
        response.raise_for_status()
        if len(response.content) > JWKS_MAX_BYTES:
            raise ValueError(f"JWKS document larger than {JWKS_MAX_BYTES} bytes")
        document = response.json()
        entries = document.get("keys", []) if isinstance(document, dict) else []
        keys: dict[str, jwt.PyJWK] = {}
        for entry in entries if isinstance(entries, list) else []:
            if len(keys) >= JWKS_MAX_KEYS:
                log.warning("JWKS lists more than %d keys; ignoring the rest", JWKS_MAX_KEYS)
                break
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWTError, TypeError, ValueError, AttributeError):
                kid = entry.get("kid") if isinstance(entry, dict) else None
                log.warning("ignoring an unusable JWKS entry (kid=%.64r)", kid)
                continue
            if key.key_id:
                keys[key.key_id] = key
        return keys


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

    async def aclose(self) -> None:
        """Stop background work (a JWKS fetch in flight)."""
        if self._jwks is not None:
            await self._jwks.aclose()

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
            self._check_claims_before_fetching(token)
            jwk = await self._jwks.key(kid)
            if jwk is None:
                raise AuthenticationError("Invalid token: unknown signing key")
            if jwk.key_type != _ASYMMETRIC[algorithm] or jwk.algorithm_name != algorithm:
                raise AuthenticationError("Invalid token: algorithm does not match its key")
            key = jwk.key
        else:
            raise AuthenticationError("Invalid token: unsupported algorithm")
        return self._decode(token, key, algorithm, require_email)

    def _check_claims_before_fetching(self, token: str) -> None:
        """Reject a token whose claims make it invalid whatever its signature (expired, wrong
        audience or issuer, no subject), before it can cost a JWKS fetch."""
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise AuthenticationError("Invalid token: malformed") from exc
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise AuthenticationError("Invalid token: no expiry")
        if exp < time.time() - _LEEWAY_SECONDS:
            raise AuthenticationError("Invalid token: expired")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if AUDIENCE not in audiences:
            raise AuthenticationError("Invalid token: wrong audience")
        if self._issuer and claims.get("iss") != self._issuer:
            raise AuthenticationError("Invalid token: wrong issuer")
        if not isinstance(claims.get("sub"), str):
            raise AuthenticationError("Invalid token: no subject")

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
                leeway=_LEEWAY_SECONDS,
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
        return Principal(
            user_id=user_id,
            email=email.lower(),
            email_claim=email,
            email_verified=email_verified(claims),
            # Supabase always sends the claim; anything but a plain false counts as anonymous.
            is_anonymous=claims.get("is_anonymous", False) is not False,
        )


def email_verified(claims: dict[str, Any]) -> bool:
    """Whether the token says its email address was confirmed.

    Supabase's access token has no top-level ``email_verified``: it carries the address in
    ``email`` and Supabase Auth sets ``user_metadata.email_verified: true`` when the address is
    confirmed (or an OAuth provider vouched for it). A top-level ``email_verified`` appears only
    when the project's custom access-token hook adds one; when present it decides. Only a JSON
    ``true`` counts. ``user_metadata`` is also writable by the user (sign-up ``data``,
    ``PUT /auth/v1/user``), so this proves a confirmed address only on a project that requires
    email confirmation before sign-in (Supabase's default): ``ADMIN_USER_IDS`` needs no such
    assumption.
    """
    if "email_verified" in claims:
        return claims["email_verified"] is True
    metadata = claims.get("user_metadata")
    return isinstance(metadata, dict) and metadata.get("email_verified") is True


def admin_email_key(address: str) -> str | None:
    """The form in which a token's email claim is compared with ``ADMIN_EMAILS``, or None when
    the claim may not match any admin address.

    Addresses are compared after NFKC and case folding, but only a claim that those steps change
    in nothing but the case of its letters can match. NFKC and case folding merge distinct
    mailboxes: KELVIN SIGN (U+212A) and fullwidth letters become ASCII under NFKC, and ``ß``
    folds to ``ss``, so ``\u212aelvin@example.com`` or an address at an IDN domain spelled with
    ``ß`` would otherwise stand for an admin's ``kelvin@example.com`` or ``…ss…`` address. So a
    claim that is not already in NFKC, or whose case folding differs from its lower case, is
    refused outright (an admin with such an address is listed in ``ADMIN_USER_IDS`` instead).
    """
    if not address or unicodedata.normalize("NFKC", address) != address:
        return None
    if address.casefold() != address.lower():
        return None
    return normalized_email(address)


def normalized_email(address: str) -> str:
    """NFKC, then case folding, then NFKC again (Unicode's compatibility caseless match)."""
    folded = unicodedata.normalize("NFKC", address).casefold()
    return unicodedata.normalize("NFKC", folded)


def is_admin(principal: Principal, settings: Settings) -> bool:
    """Whether the caller is an admin: their user id (the token's ``sub``) is in
    ``ADMIN_USER_IDS``, or their email is in ``ADMIN_EMAILS`` and the token says it is
    verified and not anonymous (see ``email_verified`` and ``admin_email_key``)."""
    if principal.user_id in settings.admin_user_ids:
        return True
    if not principal.email_verified or principal.is_anonymous:
        return False
    key = admin_email_key(principal.email_claim)
    return key is not None and any(key == normalized_email(a) for a in settings.admin_emails)


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
    email_verified: bool = True,
    is_anonymous: bool = False,
) -> str:
    """An HS256 token shaped like Supabase's (a confirmed email user unless told otherwise),
    for local development and tests."""
    now = int(time.time())
    sub = str(user_id or uuid.uuid5(uuid.NAMESPACE_URL, f"mailto:{email.lower()}"))
    claims: dict[str, Any] = {
        "sub": sub,
        "email": email,
        "aud": AUDIENCE,
        "role": "authenticated",
        "iat": now,
        "exp": now + lifetime_seconds,
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {
            "email": email,
            "email_verified": email_verified,
            "phone_verified": False,
            "sub": sub,
        },
        "is_anonymous": is_anonymous,
    }
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")
