"""Page text extraction in short-lived, resource-limited child processes (``extract_child.py``).

Extracting a page's main text parses untrusted HTML with lxml and trafilatura: CPU-heavy, and
in the service it would keep about 47 MiB after the first page (trafilatura's modules and
language data, and the malloc arenas of the worker threads it ran in). So it never runs in the
service: each page is read by a child process with a hard CPU-time and address-space limit
(``resource.setrlimit``) and a wall-clock deadline, at most ``SCRIBE_EXTRACT_PROCESSES`` at once
per process (the others wait their turn).

A page that takes a child past a limit is refused (``FetchRefused``: the page is skipped, the
item goes on without it); a child that fails otherwise (it cannot start, or exits without an
answer) is a ``TransientStepError`` naming what happened: the step fails and the queue retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from scribe.errors import FetchRefused, TransientStepError

if TYPE_CHECKING:
    from scribe.settings import Settings

log = logging.getLogger(__name__)

CHILD = Path(__file__).with_name("extract_child.py")
WALL_SECONDS_PER_CPU_SECOND = 3  # the child may wait for a shared CPU core, but not forever
STARTUP_SECONDS = 10  # interpreter start and trafilatura's import on a loaded Raspberry Pi


@dataclass(frozen=True, slots=True)
class ExtractLimits:
    """What one page's extraction may use."""

    cpu_seconds: int = 5
    memory_mb: int = 512

    @property
    def deadline(self) -> float:
        """Wall-clock seconds before the child is killed."""
        return self.cpu_seconds * WALL_SECONDS_PER_CPU_SECOND + STARTUP_SECONDS


class TextExtractor:
    """Extracts pages' main text in child processes, at most ``processes`` at a time."""

    def __init__(
        self,
        limits: ExtractLimits | None = None,
        *,
        processes: int = 1,
        child: Path = CHILD,
    ) -> None:
        self.limits = limits or ExtractLimits()
        self._slots = asyncio.Semaphore(processes)
        self._child = child

    @classmethod
    def from_settings(cls, settings: Settings) -> TextExtractor:
        """The extractor the ``SCRIBE_EXTRACT_*`` settings describe."""
        limits = ExtractLimits(
            cpu_seconds=settings.scribe_extract_cpu_seconds,
            memory_mb=settings.scribe_extract_memory_mb,
        )
        return cls(limits, processes=settings.scribe_extract_processes)

    async def text(self, html: str, url: str | None = None) -> str:
        """The page's main text ("" when it has none); FetchRefused past a limit,
        TransientStepError when the child fails otherwise."""
        data = f"{url or ''}\n{html}".encode("utf-8", errors="replace")
        async with self._slots:
            returncode, output = await self._run_child(data)
        if returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            raise self._refused(f"{self.limits.cpu_seconds} s of CPU time")
        try:
            answer = json.loads(output)
        except ValueError:
            raise self._failed(f"it exited with status {returncode} without an answer") from None
        if "text" in answer:
            return str(answer["text"])
        if answer.get("limit"):
            raise self._refused(f"{self.limits.memory_mb} MB of memory")
        raise self._failed(f"it answered {str(answer.get('error'))[:200]!r}")

    async def _run_child(self, data: bytes) -> tuple[int | None, bytes]:
        limits = self.limits
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",  # no user site or PYTHON* variables: only the venv and this file
                str(self._child),
                str(limits.cpu_seconds),
                str(limits.memory_mb * 1024 * 1024),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as exc:
            raise self._failed(f"it could not start: {exc}") from exc
        try:
            async with asyncio.timeout(limits.deadline):
                output, _ = await process.communicate(data)
        except TimeoutError:
            raise self._refused(f"{limits.deadline:.0f} s to read") from None
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        return process.returncode, output

    def _refused(self, what: str) -> FetchRefused:
        log.info("page text extraction refused: it needed more than %s", what)
        return FetchRefused(f"page text extraction needed more than {what}")

    def _failed(self, what: str) -> TransientStepError:
        log.warning("page text extraction failed: %s", what)
        return TransientStepError(f"page text extraction failed: {what}")
