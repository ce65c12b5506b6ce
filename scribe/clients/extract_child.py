"""The page text extractor that runs in its own, resource-limited process.

``scribe.clients.extract`` starts this file as a script (``python -I extract_child.py CPU
MEMORY``), writes the page to its stdin (the page's URL on the first line, then its HTML, UTF-8)
and reads one JSON object from its stdout: ``{"text": …}`` or ``{"error": …, "limit": true}``.
The limits are set with ``resource.setrlimit`` before trafilatura is imported, so a hostile page
(a DOM of millions of nodes, a pathological nesting) ends in SIGXCPU or MemoryError here, and
trafilatura, lxml and their language data never enter the service (about 47 MiB kept after the
first page, with the malloc arenas its worker threads grew). It imports nothing from ``scribe``.
"""

from __future__ import annotations

import json
import resource
import sys


def page_text(html: str, url: str | None) -> str:
    """The main text of an HTML page (trafilatura), or "" when there is none."""
    import trafilatura

    text = trafilatura.extract(
        html, url=url, include_comments=False, include_tables=False, favor_recall=True
    )
    return (text or "").strip()


def main(argv: list[str]) -> int:
    """Read a page from stdin under the limits in ``argv``; print the JSON answer."""
    cpu_seconds, memory_bytes = (int(value) for value in argv[1:3])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    url, _, html = sys.stdin.buffer.read().decode("utf-8", errors="replace").partition("\n")
    answer: dict[str, str | bool]
    try:
        answer = {"text": page_text(html, url or None)}
    except (MemoryError, RecursionError):
        answer = {"error": "memory", "limit": True}
    sys.stdout.write(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
