"""The project's exceptions live in ``scribe.errors`` (read from the source, nothing imported):
one hierarchy, ``retry_after`` defined once, and the module at the bottom of the layering."""

from __future__ import annotations

import ast
from pathlib import Path

from scribe import errors

PACKAGE = Path(errors.__file__).parent
ERRORS = PACKAGE / "errors.py"
# Exceptions that may stay where they are raised: a private name (control flow inside one
# module), or these. pdf_child runs as a separate script that imports nothing of the package.
LOCAL = {"clients/pdf_child.py": {"Rejected"}}


def _exception_classes(path: Path, known: set[str]) -> list[str]:
    """Classes in ``path`` with a base that is an exception (by name: ``…Error``,
    ``…Exception`` or a class of ``known``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ClassDef):
            continue
        bases = [ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases]
        if any(b.endswith(("Error", "Exception")) or b in known for b in bases):
            found.append(node.name)
    return found


def test_every_exception_of_the_package_is_defined_in_scribe_errors() -> None:
    known = set(_exception_classes(ERRORS, set()))
    known |= set(_exception_classes(ERRORS, known))  # subclasses of subclasses
    elsewhere = {
        str(path.relative_to(PACKAGE)): names
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != ERRORS
        and (
            names := [
                name
                for name in _exception_classes(path, known)
                if not name.startswith("_")
                and name not in LOCAL.get(str(path.relative_to(PACKAGE)), set())
            ]
        )
    }
    assert elsewhere == {}


def test_retry_after_is_set_by_one_class_and_read_without_getattr() -> None:
    setters = []  # every `….retry_after = …` of the package
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        assert '"retry_after"' not in source, path  # no getattr/hasattr by name
        setters += [
            (path, node.lineno)
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute)
            and node.attr == "retry_after"
            and isinstance(node.ctx, ast.Store)
        ]
    try_later = next(
        node
        for node in ast.walk(ast.parse(ERRORS.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef) and node.name == "TryLater"
    )
    assert len(setters) == 1
    path, line = setters[0]
    assert path == ERRORS
    assert try_later.lineno <= line <= (try_later.end_lineno or 0)
    for kind in (errors.QuotaExceeded, errors.TransientStepError, errors.UpstreamUnavailable):
        assert issubclass(kind, errors.TryLater)
    assert errors.ProviderPaused("paused", provider="exa", retry_after=60).retry_after == 60


def test_scribe_errors_imports_nothing_of_the_package() -> None:
    tree = ast.parse(ERRORS.read_text(encoding="utf-8"))
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ] + [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert [name for name in imported if name.split(".")[0] == "scribe"] == []
    assert all(
        node.level == 0 for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    )  # no relative import either
