"""Resume PDFs: download from an allow-listed host (SSRF-guarded, size-capped), text via pypdf."""

from __future__ import annotations

import asyncio
import io
import logging
from urllib.parse import urlsplit

import httpx
from pypdf import PdfReader
from pypdf.errors import PdfReadError, PyPdfError

from scribe.clients.fetch import download
from scribe.errors import FetchRefused, InvalidRequest

log = logging.getLogger(__name__)

MAX_PDF_BYTES = 10 * 1024 * 1024
MIN_TEXT_CHARS = 80  # less than this is a scanned or empty PDF
MAX_TEXT_CHARS = 20_000


def check_pdf_url(url: str, allowed_hosts: list[str]) -> None:
    """InvalidRequest unless ``url`` is https/http on an allow-listed host."""
    try:
        # urlsplit raises ValueError on a malformed IPv6 literal ("http://[::1/x", "[127.0.0.1]").
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018  (a bad port is a ValueError too, raised on access)
    except ValueError as exc:
        raise InvalidRequest("pdf_url is not a valid URL.") from exc
    if parts.scheme not in ("https", "http") or not host:
        raise InvalidRequest("pdf_url must be an http(s) URL.")
    if host not in allowed_hosts:
        raise InvalidRequest(f"pdf_url host {host!r} is not allowed.")


def pdf_text(data: bytes) -> str:
    """The text of a PDF; InvalidRequest when it is not a readable text PDF."""
    if not data.startswith(b"%PDF"):
        raise InvalidRequest("The file is not a PDF.")
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages[:10]]
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest("The PDF could not be read; please upload another file.") from exc
    text = "\n".join(" ".join(page.split()) for page in pages).strip()
    if len(text) < MIN_TEXT_CHARS:
        raise InvalidRequest(
            "No text could be extracted from the PDF (is it a scanned image?). "
            "Please upload a text-based PDF."
        )
    return text[:MAX_TEXT_CHARS]


async def resume_text(
    client: httpx.AsyncClient, url: str, allowed_hosts: list[str], *, deadline: float = 30.0
) -> str:
    """Download the resume at ``url`` and return its text (InvalidRequest for a bad file or
    URL, FetchRefused past the cap or for a refused address)."""
    check_pdf_url(url, allowed_hosts)
    try:
        # No redirects: every hop would have to be on the allow-list too.
        page = await download(
            client, url, max_bytes=MAX_PDF_BYTES, deadline=deadline, follow_redirects=False
        )
    except FetchRefused as exc:
        raise InvalidRequest(f"The PDF could not be downloaded: {exc}") from exc
    except httpx.HTTPError as exc:
        raise InvalidRequest(f"The PDF could not be downloaded ({type(exc).__name__}).") from exc
    return await asyncio.to_thread(pdf_text, page.body)
