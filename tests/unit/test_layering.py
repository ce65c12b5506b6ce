"""The layering contracts of pyproject.toml ([tool.importlinter], run by `make lint`) catch an
import against the layering: checked on a copy of the package with one such import added."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
LAYERS = "scribe is layered: each package imports only those below it BROKEN"


def _lint_copy(tmp_path: Path, change: Callable[[Path], None]) -> subprocess.CompletedProcess[str]:
    """Run lint-imports over a copy of ``scribe`` (``tmp_path / "scribe"``) after ``change``."""
    shutil.copytree(REPO / "scribe", tmp_path / "scribe", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    change(tmp_path / "scribe")
    # lint-imports puts its working directory first on sys.path: the copy is the one analysed.
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


def _lint_copy_with(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess[str]:
    """Run lint-imports over a copy of ``scribe`` where ``module`` (a path) also has ``line``."""

    def add_line(package: Path) -> None:
        with (package.parent / module).open("a") as source:
            source.write(f"\n{line}\n")

    return _lint_copy(tmp_path, add_line)


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        (
            "scribe/clients/search.py",
            "from scribe.steps.state import EmailState",
            LAYERS,
        ),
        (
            "scribe/domain/grounding.py",
            "from scribe.steps.models import Source",
            "scribe.domain is pure: it imports nothing else of the package BROKEN",
        ),
        (  # errors sits below domain in the layers: only domain's own contract refuses this
            "scribe/domain/names.py",
            "from scribe.errors import InvalidRequest",
            "scribe.domain is pure: it imports nothing else of the package BROKEN",
        ),
        (
            "scribe/queue/lease.py",
            "from scribe.api.common import json_response",
            LAYERS,
        ),
        (  # api sits above steps in the layers: only its own contract refuses this
            "scribe/api/users.py",
            "from scribe.steps.models import Source",
            "scribe.api imports nothing of the pipeline steps BROKEN",
        ),
        (
            "scribe/db/pool.py",
            "from scribe.queue.lease import keep_leases",
            LAYERS,
        ),
        (
            "scribe/settings.py",
            "from scribe.db.pool import Pool",
            LAYERS,
        ),
        (
            "scribe/process/startup.py",
            "from scribe.db.pool import Pool",
            LAYERS,
        ),
        (
            "scribe/http/rate_limit.py",
            "from scribe.worker import job_handlers",
            LAYERS,
        ),
        (  # queue and steps are independent: neither imports the other
            "scribe/steps/web_scraper.py",
            "from scribe.queue.backoff import Backoff",
            LAYERS,
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


def test_lint_fails_on_a_top_level_module_placed_in_no_layer(tmp_path: Path) -> None:
    def add_module(package: Path) -> None:
        (package / "scratch.py").write_text('"""A module nobody placed in the layers."""\n')

    result = _lint_copy(tmp_path, add_module)
    assert result.returncode != 0, result.stdout
    assert LAYERS in result.stdout
    assert "- scribe.scratch" in result.stdout


def test_the_package_as_it_is_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint_copy(tmp_path, lambda package: None)
    assert result.returncode == 0, result.stdout
