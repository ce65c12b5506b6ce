"""The TLS context the process's HTTP clients share (one: each costs a CA-bundle load)."""

from __future__ import annotations

import ssl


def tls_context() -> ssl.SSLContext:
    """httpx's default TLS context, with httpx's connection layer (httpcore, h11) loaded beside
    it, which the first client would otherwise load. Slow (~50 ms for the CA bundle, outside
    Python's lock, and ~30 ms of imports): ``scribe serve`` begins it ahead
    (scribe.process.startup)."""
    import httpcore  # noqa: F401
    import httpx

    return httpx.create_ssl_context()
