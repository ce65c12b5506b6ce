"""A Supabase JWKS endpoint on 127.0.0.1: ``/auth/v1/.well-known/jwks.json`` over real HTTP.

It holds an ES256 and an RS256 signing key, can rotate them, can be switched "down" (answers 503)
or "hanging" (answers only once released), and counts the JWKS requests it serves, so tests can
assert how often the verifier refetched.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

JWKS_PATH = "/auth/v1/.well-known/jwks.json"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key with its ``kid`` and algorithm."""

    kid: str
    algorithm: str
    private_key: PrivateKey

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK, the way Supabase publishes it."""
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            jwk = ECAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        else:
            jwk = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig", "key_ops": ["verify"]}


def new_key(algorithm: str) -> SigningKey:
    """A fresh ES256 or RS256 signing key with a random kid."""
    private_key: PrivateKey
    if algorithm == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "RS256":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(algorithm)
    return SigningKey(kid=uuid.uuid4().hex, algorithm=algorithm, private_key=private_key)


@dataclass
class FakeJwks:
    """State of the fake: the published keys, the up/down switch and a request counter."""

    base_url: str = ""
    keys: list[SigningKey] = field(default_factory=lambda: [new_key("ES256"), new_key("RS256")])
    down: bool = False
    requests: int = 0
    # While set, requests hang until ``release`` is set (or 30 s pass): a provider that stalls.
    hanging: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def es256(self) -> SigningKey:
        """The current ES256 key."""
        return next(key for key in self.keys if key.algorithm == "ES256")

    @property
    def rs256(self) -> SigningKey:
        """The current RS256 key."""
        return next(key for key in self.keys if key.algorithm == "RS256")

    @property
    def issuer(self) -> str:
        """The ``iss`` Supabase puts in its tokens for this project URL."""
        return f"{self.base_url}/auth/v1"

    def rotate(self) -> SigningKey:
        """Replace the ES256 key by a new one (new kid); return the new key."""
        fresh = new_key("ES256")
        self.keys = [fresh if key.algorithm == "ES256" else key for key in self.keys]
        return fresh

    def document(self) -> bytes:
        """The JWKS JSON body."""
        return json.dumps({"keys": [key.public_jwk() for key in self.keys]}).encode()

    def count(self) -> None:
        """Record one JWKS request."""
        with self._lock:
            self.requests += 1

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """Claims of a valid Supabase access token for this project (a confirmed email user),
        with overrides (``None`` removes a claim)."""
        now = int(time.time())
        sub = str(overrides.get("sub") or uuid.uuid4())
        email = overrides.get("email", f"user-{sub[:8]}@uni.edu")
        claims: dict[str, Any] = {
            "sub": sub,
            "email": email,
            "aud": "authenticated",
            "role": "authenticated",
            "iss": self.issuer,
            "iat": now,
            "exp": now + 3600,
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": {
                "email": email,
                "email_verified": True,
                "phone_verified": False,
                "sub": sub,
            },
            "aal": "aal1",
            "session_id": str(uuid.uuid4()),
            "is_anonymous": False,
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def sign(self, key: SigningKey, *, kid: str | None = None, **overrides: Any) -> str:
        """A token signed by ``key`` (its kid unless another is given)."""
        return jwt.encode(
            self.claims(**overrides),
            key.private_key,
            algorithm=key.algorithm,
            headers={"kid": kid or key.kid},
        )


def _handler(state: FakeJwks) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != JWKS_PATH:
                self._reply(404, b'{"error":"not found"}')
                return
            state.count()
            if state.hanging:
                state.release.wait(timeout=30)
            if state.down:
                self._reply(503, b'{"error":"unavailable"}')
            else:
                self._reply(200, state.document())

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            with contextlib.suppress(ConnectionError):  # the client gave up waiting (hang mode)
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve_jwks() -> Iterator[FakeJwks]:
    """Run the fake on a free loopback port (in a thread) for the duration of the block."""
    state = FakeJwks()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fake-jwks", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()  # let hanging handlers finish
        server.shutdown()
        server.server_close()
        thread.join()
