"""A flood of one kind of event logs one line per window, and says how many it left out."""

from __future__ import annotations

import logging

import pytest

from scribe.http import log_throttle
from scribe.http.guard import peer_key
from scribe.http.log_throttle import ThrottledLog, throttle_logger


def test_one_line_per_kind_per_window(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    log = ThrottledLog(logging.getLogger("test.throttle"), clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.throttle"):
        for _ in range(500):
            log.info("invalid", "refused an invalid request")
        log.info("headers", "refused a large header")
        now[0] += log_throttle.THROTTLE_SECONDS
        log.info("invalid", "refused an invalid request")
    assert [record.getMessage() for record in caplog.records] == [
        "refused an invalid request",
        "refused a large header",
        "refused an invalid request (and 499 more like it in the last 10 s)",
    ]


def test_a_throttled_logger_keeps_one_traceback_per_exception_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test.throttle.errors")
    throttle_logger(logger)
    throttle_logger(logger)  # once per logger
    with caplog.at_level(logging.ERROR, logger="test.throttle.errors"):
        for error in [RuntimeError("a")] * 100 + [ValueError("b")] * 100:
            try:
                raise error
            except Exception:
                logger.exception("unhandled error on %s", "/x")
    assert [record.exc_info[0] for record in caplog.records if record.exc_info] == [
        RuntimeError,
        ValueError,
    ]
    assert len([f for f in logger.filters if isinstance(f, log_throttle.ThrottleFilter)]) == 1


def test_the_kinds_remembered_are_bounded() -> None:
    window = log_throttle._Window()
    for kind in range(log_throttle.MAX_KINDS * 3):
        assert window.admit(kind) == 0
    assert len(window._last) == log_throttle.MAX_KINDS


def test_connections_are_counted_per_address_and_ipv6_per_64() -> None:
    assert peer_key("203.0.113.7") == "203.0.113.7"
    assert peer_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert peer_key("2001:db8:1:2::1") == peer_key("2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert peer_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert peer_key("2001:db8:1:3::1") != peer_key("2001:db8:1:2::1")
