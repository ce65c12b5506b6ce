"""Who is an admin (no I/O): by user id, or by an email address the token says is verified,
not anonymous, and that matches an admin address without Unicode look-alike tricks."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from scribe.http.auth import Principal, admin_email_key, email_verified, is_admin
from scribe.settings import Settings

ADMIN_ID = uuid.uuid4()
SETTINGS = Settings(
    _env_file=None,
    admin_emails=" Kelvin@Example.com , strasse@uni.edu, josé@uni.edu",
    admin_user_ids=f"{ADMIN_ID}, {uuid.uuid4()}",
)


def caller(email: str, *, verified: bool = True, anonymous: bool = False) -> Principal:
    return Principal(
        user_id=uuid.uuid4(),
        email=email.lower(),
        email_claim=email,
        email_verified=verified,
        is_anonymous=anonymous,
    )


@pytest.mark.parametrize("claim", ["kelvin@example.com", "KELVIN@EXAMPLE.COM", "josé@uni.edu"])
def test_a_verified_admin_address_in_any_letter_case_is_an_admin(claim: str) -> None:
    assert is_admin(caller(claim), SETTINGS)


@pytest.mark.parametrize(
    "claim",
    [
        "\u212aelvin@example.com",  # KELVIN SIGN: NFKC makes it K
        "\uff4belvin@example.com",  # FULLWIDTH k
        "kelvin@example.co\u1d50",  # MODIFIER LETTER SMALL M
        "straße@uni.edu",  # folds to "strasse"
        "jose\u0301@uni.edu",  # decomposed é: not NFKC, so not compared at all
        "kelvin@example.com ",
        "",
    ],
)
def test_look_alike_addresses_are_not_admins(claim: str) -> None:
    assert not is_admin(caller(claim), SETTINGS)
    assert admin_email_key(claim) is None or admin_email_key(claim) != "kelvin@example.com"


def test_the_kelvin_sign_would_have_matched_after_nfkc_and_case_folding_alone() -> None:
    """Why the claim must already be normalized: the plain comparison merges the two."""
    import unicodedata

    spoof = "\u212aelvin@example.com"
    assert unicodedata.normalize("NFKC", spoof).casefold() == "kelvin@example.com"
    assert spoof.lower() == "kelvin@example.com"
    assert admin_email_key(spoof) is None


def test_an_unverified_or_anonymous_admin_address_is_not_an_admin() -> None:
    assert not is_admin(caller("kelvin@example.com", verified=False), SETTINGS)
    assert not is_admin(caller("kelvin@example.com", anonymous=True), SETTINGS)


def test_a_listed_user_id_is_an_admin_whatever_its_email() -> None:
    listed = Principal(user_id=ADMIN_ID, email="", email_claim="")
    assert is_admin(listed, SETTINGS)
    unlisted = Principal(user_id=uuid.uuid4(), email="", email_claim="")
    assert not is_admin(unlisted, SETTINGS)


def test_admin_user_ids_must_be_uuids() -> None:
    from scribe.errors import ConfigurationError
    from scribe.settings import load_settings

    with pytest.raises(ConfigurationError, match="ADMIN_USER_IDS"):
        load_settings(_env_file=None, admin_user_ids="boss@uni.edu")


@pytest.mark.parametrize(
    ("claims", "verified"),
    [
        ({"user_metadata": {"email_verified": True}}, True),  # what Supabase signs
        ({"user_metadata": {"email_verified": False}}, False),
        ({"user_metadata": {"email_verified": "true"}}, False),  # only a JSON true
        ({"user_metadata": {}}, False),
        ({}, False),
        ({"email_verified": True}, True),  # added by a custom access-token hook
        ({"email_verified": False, "user_metadata": {"email_verified": True}}, False),
        ({"user_metadata": "email_verified"}, False),
    ],
)
def test_email_verified_reads_the_forms_supabase_signs(
    claims: dict[str, Any], verified: bool
) -> None:
    assert email_verified(claims) is verified
