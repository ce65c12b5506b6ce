"""Logs that a flood of bad requests cannot turn into a flood of lines.

A service on an SD card writes its journal there: a client that sends a thousand malformed
requests must not write a thousand tracebacks. ``ThrottledLog`` logs one line per kind of event
every ``THROTTLE_SECONDS``; ``throttle_logger`` does the same for another module's logger (uvicorn's
"Invalid HTTP request received.", an unhandled error's traceback per exception type). The line
after a quiet spell says how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

THROTTLE_SECONDS = 10.0
MAX_KINDS = 256  # kinds remembered; the least recently logged is forgotten past this


class _Window:
    """When each kind was last let through, and how many were held back since."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: OrderedDict[object, float] = OrderedDict()
        self._held: dict[object, int] = {}

    def admit(self, kind: object) -> int | None:
        """None to hold this one back; else how many of its kind were held back before it."""
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < THROTTLE_SECONDS:
            self._held[kind] = self._held.get(kind, 0) + 1
            return None
        self._last[kind] = now
        self._last.move_to_end(kind)
        while len(self._last) > MAX_KINDS:
            forgotten, _ = self._last.popitem(last=False)
            self._held.pop(forgotten, None)
        return self._held.pop(kind, 0)


def _suffix(held: int) -> str:
    return f" (and {held} more like it in the last {THROTTLE_SECONDS:.0f} s)" if held else ""


class ThrottledLog:
    """One INFO line per kind every THROTTLE_SECONDS, on ``logger``."""

    def __init__(self, logger: logging.Logger, clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._window = _Window(clock)

    def info(self, kind: str, message: str, *args: object) -> None:
        """Log ``message % args`` unless a line of this ``kind`` went out moments ago."""
        held = self._window.admit(kind)
        if held is not None:
            self._logger.info(message + _suffix(held).replace("%", "%%"), *args)


class ThrottleFilter(logging.Filter):
    """Lets one record per (message, exception type) through every THROTTLE_SECONDS."""

    def __init__(self) -> None:
        super().__init__()
        self._window = _Window()

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[0] if record.exc_info else None
        held = self._window.admit((record.name, record.msg, error))
        if held is None:
            return False
        if held:
            record.msg, record.args = record.getMessage() + _suffix(held), None
        return True


def throttle_logger(logger: logging.Logger) -> None:
    """Throttle ``logger``'s records (once per logger, however often it is called)."""
    if not any(isinstance(existing, ThrottleFilter) for existing in logger.filters):
        logger.addFilter(ThrottleFilter())
