"""The layering contracts of pyproject.toml ([tool.importlinter], run by `make lint`) catch an
import against the layering: checked on a copy of the package with one such import added."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_copy_with(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess[str]:
    """Run lint-imports over a copy of ``scribe`` where ``module`` (a path) also has ``line``."""
    shutil.copytree(REPO / "scribe", tmp_path / "scribe", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    with (tmp_path / module).open("a") as source:
        source.write(f"\n{line}\n")
    # lint-imports puts its working directory first on sys.path: the copy is the one analysed.
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        (
            "scribe/clients/search.py",
            "from scribe.steps.state import EmailState",
            "scribe.clients (external services) know nothing of the pipeline steps BROKEN",
        ),
        (
            "scribe/domain/grounding.py",
            "from scribe.steps.models import Source",
            "scribe.domain is pure: it imports nothing else of the package BROKEN",
        ),
        (
            "scribe/queue/lease.py",
            "from scribe.api.common import json_response",
            "scribe.queue is a generic engine: no API, no pipeline steps, no composition root",
        ),
        (
            "scribe/queue/runner.py",
            "from scribe.clients.llm import LLM",
            "scribe.queue imports nothing of scribe.clients nor scribe.providers BROKEN",
        ),
        (
            "scribe/queue/waiting.py",
            "from scribe.providers.accounts import Accounts",
            "scribe.queue imports nothing of scribe.clients nor scribe.providers BROKEN",
        ),
        (
            "scribe/clients/search.py",
            "from scribe.db.providers import ProviderTables",
            "scribe.clients and scribe.providers import nothing of scribe.db BROKEN",
        ),
        (
            "scribe/providers/sharing.py",
            "from scribe.db.providers import ProviderTables",
            "scribe.clients and scribe.providers import nothing of scribe.db BROKEN",
        ),
    ],
)
def test_lint_fails_on_an_import_against_the_layering(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    result = _lint_copy_with(tmp_path, module, line)
    assert result.returncode != 0, result.stdout
    assert contract in result.stdout
    importer = module.removesuffix(".py").replace("/", ".")
    imported = line.split()[1]
    assert f"{importer} -> {imported}" in result.stdout
