"""Arithmetic of the admin API and the user-facing texts of template generation (no I/O)."""

from __future__ import annotations

import pytest

from scribe.api.admin import page_count, percentage
from scribe.api.template_generation import PDF_UNREADABLE, pdf_problem


@pytest.mark.parametrize(
    ("total", "per_page", "pages"), [(0, 20, 1), (1, 20, 1), (20, 20, 1), (40, 20, 2), (41, 20, 3)]
)
def test_page_count_is_at_least_one_and_rounds_up(total: int, per_page: int, pages: int) -> None:
    assert page_count(total, per_page) == pages


def test_percentage_rounds_to_two_places_and_is_zero_without_a_whole() -> None:
    assert percentage(2, 3) == 66.67
    assert percentage(1, 3) == 33.33
    assert percentage(3, 3) == 100.0
    assert percentage(0, 0) == 0.0


@pytest.mark.parametrize(
    "reason",
    [
        "The PDF could not be downloaded: cannot resolve files.example: [Errno -2] Name unknown",
        "The PDF could not be downloaded (ConnectTimeout).",
        "The PDF could not be read; please upload another file.",
    ],
)
def test_pdf_problem_never_repeats_the_internal_reason(reason: str) -> None:
    assert pdf_problem(reason) == PDF_UNREADABLE


def test_pdf_problem_names_what_the_user_can_fix() -> None:
    assert "scanned" in pdf_problem("No text could be extracted (is it a scanned image?)")
    assert "larger than 10 MB" in pdf_problem("response is larger than 10485760 bytes")
    assert "not allowed" in pdf_problem("pdf_url host 'x.example' is not allowed.")
    assert "not a PDF" in pdf_problem("The file is not a PDF.")
