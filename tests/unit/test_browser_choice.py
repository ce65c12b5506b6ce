"""Which Chromium binary the browser path launches."""

from __future__ import annotations

from pathlib import Path

import pytest

from scribe.clients import browser
from scribe.clients.browser import find_chromium, launch_args


def executable(path: Path) -> str:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_configured_path_wins_over_the_headless_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(browser, "DEBIAN_HEADLESS_SHELL", executable(tmp_path / "shell"))
    configured = executable(tmp_path / "chromium")
    assert find_chromium(configured) == configured
    assert find_chromium(str(tmp_path / "missing")) is None


def test_headless_shell_is_preferred_when_nothing_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shell = executable(tmp_path / "chromium-headless-shell")
    monkeypatch.setattr(browser, "DEBIAN_HEADLESS_SHELL", shell)
    assert find_chromium(None) == shell


def test_one_renderer_process_per_concurrent_page() -> None:
    assert "--renderer-process-limit=1" in launch_args(1)
    assert "--renderer-process-limit=3" in launch_args(3)
