"""The PDF text extractor that runs in its own, resource-limited process.

``scribe.clients.pdf`` starts this file as a script (``python -I pdf_child.py CPU MEMORY PAGES
CHARS``), writes the PDF to its stdin and reads one JSON object from its stdout:
``{"text": …}`` or ``{"error": …, "limit": bool}``. The limits are set with
``resource.setrlimit`` before pypdf is imported, so a hostile PDF (a decompression bomb, a
content stream of millions of operators) ends in SIGXCPU or MemoryError here, never in the
service. It imports nothing from ``scribe``, so it starts in a few tens of milliseconds.
"""

from __future__ import annotations

import io
import json
import resource
import sys

MIN_TEXT_CHARS = 80  # less than this is a scanned or empty PDF


class Rejected(Exception):
    """The PDF is not usable; the message is safe to show to the user."""


def pdf_text(data: bytes, *, max_pages: int, max_chars: int) -> str:
    """The text of the first ``max_pages`` pages, at most ``max_chars`` characters; Rejected when
    it is not a readable text PDF."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PyPdfError

    if not data.startswith(b"%PDF"):
        raise Rejected("The file is not a PDF.")
    texts: list[str] = []
    total = 0
    try:
        reader = PdfReader(io.BytesIO(data))
        for page in reader.pages[:max_pages]:
            text = " ".join((page.extract_text() or "").split())
            texts.append(text)
            total += len(text) + 1
            if total >= max_chars:
                break
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Rejected("The PDF could not be read; please upload another file.") from exc
    text = "\n".join(texts).strip()
    if len(text) < MIN_TEXT_CHARS:
        raise Rejected(
            "No text could be extracted from the PDF (is it a scanned image?). "
            "Please upload a text-based PDF."
        )
    return text[:max_chars]


def main(argv: list[str]) -> int:
    """Read a PDF from stdin under the limits in ``argv``; print the JSON answer."""
    cpu_seconds, memory_bytes, max_pages, max_chars = (int(value) for value in argv[1:5])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    data = sys.stdin.buffer.read()
    answer: dict[str, str | bool]
    try:
        answer = {"text": pdf_text(data, max_pages=max_pages, max_chars=max_chars)}
    except Rejected as exc:
        answer = {"error": str(exc), "limit": False}
    except (MemoryError, RecursionError):
        answer = {"error": "memory", "limit": True}
    sys.stdout.write(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
