"""Every setting the service reads has its row in docs/configuration.md."""

from __future__ import annotations

from pathlib import Path

from scribe.settings import Settings

CONFIGURATION = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_in_the_configuration_table() -> None:
    table = CONFIGURATION.read_text("utf-8")
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in table]
    assert missing == []
