"""What a valid email template is (checked at the API, before anything is queued)."""

from __future__ import annotations

# The earlier backend's contract, which the frontend relies on (it only checks "not blank"):
# a short template is analysed like any other (the offline rules and the merge cope with it).
MIN_TEMPLATE_CHARS = 10


def validate_template(text: str) -> str:
    """Return the template when it is not blank and at least 10 characters; ValueError otherwise.

    Usable as a pydantic validator, so a short template is a 422 at the API, before queueing.
    """
    if not text.strip():
        raise ValueError("Template must not be blank.")
    if len(text) < MIN_TEMPLATE_CHARS:
        raise ValueError(f"Template is too short: write at least {MIN_TEMPLATE_CHARS} characters.")
    return text
