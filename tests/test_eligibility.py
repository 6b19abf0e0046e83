"""The eligibility rule and the login check (CONTRACT.md, "Words")."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.eligibility import (
    EXCLUDED_WORDS,
    LOGIN_WARNING,
    Eligibility,
    eligibility,
    login_warning,
)

SERVER = "SRV1"


def check_off(name: str, registered: str | None = None) -> Eligibility:
    return eligibility(
        name,
        is_practice=True,
        registered_server=registered,
        server_id=SERVER,
        genuine_server_check=False,
    )


def check_on(registered: str | None, name: str = "Smile Dental") -> Eligibility:
    return eligibility(
        name,
        is_practice=True,
        registered_server=registered,
        server_id=SERVER,
        genuine_server_check=True,
    )


NAME_TABLE: list[tuple[str, str, bool, str | None]] = [
    # id, database name, eligible, the word the reason names
    ("ordinary-name", "Smile Dental", True, None),
    ("substring-inside-word", "Contest Dental", False, "test"),
    ("substring-latest", "Latest Smiles", False, "test"),
    ("upper-case", "DEMO", False, "demo"),
    ("training-with-year", "Training 2026", False, "training"),
    ("backup-underscore", "Backup_2024", False, "backup"),
    ("whole-name-trial", "trial", False, "trial"),
    ("mixed-case", "TeSt", False, "test"),
    ("two-words-names-first-listed", "Training Demo", False, "demo"),
    ("non-ascii", "Zahnarztpraxis Müller", True, None),
    ("apostrophe", "O'Brien Dental", True, None),
    ("double-quotes", 'The "Best" Dentist', True, None),
    ("non-ascii-with-word", "Praxis Müller Test", False, "test"),
    ("word-split-by-space", "Te st Dental", True, None),
    ("empty-name", "", True, None),
]
NAME_CASES = [pytest.param(name, ok, word, id=id_) for id_, name, ok, word in NAME_TABLE]


@pytest.mark.parametrize(("name", "eligible", "word"), NAME_CASES)
def test_with_the_check_off_the_name_decides(name: str, eligible: bool, word: str | None) -> None:
    result = check_off(name)

    assert result.eligible is eligible
    assert "Genuine Server Check is off" in result.reason
    if word is not None:
        assert f"name contains '{word}'" in result.reason


def test_with_the_check_off_registered_server_is_ignored() -> None:
    assert check_off("Smile Dental", registered="OTHER").eligible
    assert not check_off("Demo Practice", registered=SERVER).eligible


GENUINE_TABLE: list[tuple[str, str | None, bool]] = [
    # id, practice.registered_server, eligible (this server is SRV1)
    ("matching", "SRV1", True),
    ("case-different", "srv1", True),
    ("whitespace-padded", "  SRV1\t", True),
    ("padded-and-case-different", " Srv1 ", True),
    ("mismatching", "OTHER", False),
    ("prefix-is-not-a-match", "SRV10", False),
    ("inner-space-counts", "SRV 1", False),
    ("none", None, False),
    ("empty", "", False),
    ("blank", "   ", False),
]
GENUINE_CASES = [pytest.param(reg, ok, id=id_) for id_, reg, ok in GENUINE_TABLE]


@pytest.mark.parametrize(("registered", "eligible"), GENUINE_CASES)
def test_with_the_check_on_registered_server_decides(
    registered: str | None, eligible: bool
) -> None:
    result = check_on(registered)

    assert result.eligible is eligible
    assert "Genuine Server Check is on" in result.reason


@pytest.mark.parametrize(
    "name", ["Demo Practice", "Training 2026", "Contest Dental", "Backup_2024"]
)
def test_with_the_check_on_a_demo_like_name_registered_here_is_eligible(name: str) -> None:
    assert check_on(SERVER, name=name).eligible


def test_with_the_check_on_server_id_is_trimmed_and_casefolded_too() -> None:
    result = eligibility(
        "Smile Dental",
        is_practice=True,
        registered_server="srv1",
        server_id="  SRV1 ",
        genuine_server_check=True,
    )

    assert result.eligible


def test_with_the_check_on_an_empty_server_id_matches_no_empty_registration() -> None:
    result = eligibility(
        "Smile Dental",
        is_practice=True,
        registered_server="",
        server_id="",
        genuine_server_check=True,
    )

    assert not result.eligible


@pytest.mark.parametrize(
    ("registered", "reason"),
    [
        pytest.param(
            "SRV1",
            "Genuine Server Check is on and registered_server 'SRV1' matches this server",
            id="match",
        ),
        pytest.param(
            "OTHER",
            "Genuine Server Check is on and registered_server 'OTHER' is not this server 'SRV1'",
            id="mismatch",
        ),
        pytest.param(None, "Genuine Server Check is on and registered_server is empty", id="none"),
    ],
)
def test_the_reason_says_why_with_the_check_on(registered: str | None, reason: str) -> None:
    assert check_on(registered).reason == reason


@pytest.mark.parametrize("check", [True, False], ids=["check-on", "check-off"])
@pytest.mark.parametrize("name", ["master", "Smile Dental", "Demo"])
def test_a_database_without_a_practice_table_is_never_eligible(name: str, check: bool) -> None:
    result = eligibility(
        name,
        is_practice=False,
        registered_server=SERVER,
        server_id=SERVER,
        genuine_server_check=check,
    )

    assert result == Eligibility(False, "no practice table")


ALL_RESULTS = [pytest.param(check_off(name), id=f"off-{id_}") for id_, name, _, _ in NAME_TABLE] + [
    pytest.param(check_on(reg), id=f"on-{id_}") for id_, reg, _ in GENUINE_TABLE
]


@pytest.mark.parametrize("result", ALL_RESULTS)
def test_login_warning_agrees_with_eligibility(result: Eligibility) -> None:
    expected = None if result.eligible else LOGIN_WARNING

    assert login_warning(result) == expected


def test_login_warning_text_is_the_contracts() -> None:
    assert LOGIN_WARNING == "This may not be your real database"
    assert login_warning(check_off("Demo")) == "This may not be your real database"


def test_excluded_words_are_the_contracts() -> None:
    assert EXCLUDED_WORDS == ("demo", "training", "test", "trial", "backup")


@given(
    name=st.text(),
    is_practice=st.booleans(),
    registered=st.none() | st.text(),
    server_id=st.text(),
    check=st.booleans(),
)
def test_login_warning_is_none_iff_eligible(
    name: str, is_practice: bool, registered: str | None, server_id: str, check: bool
) -> None:
    result = eligibility(
        name,
        is_practice=is_practice,
        registered_server=registered,
        server_id=server_id,
        genuine_server_check=check,
    )

    assert (login_warning(result) is None) is result.eligible


@given(name=st.text())
def test_with_the_check_off_eligible_iff_no_word_is_a_substring(name: str) -> None:
    expected = not any(word in name.casefold() for word in EXCLUDED_WORDS)

    assert check_off(name).eligible is expected


@given(
    prefix=st.text(),
    word=st.sampled_from(EXCLUDED_WORDS),
    suffix=st.text(),
    upper=st.booleans(),
)
def test_with_the_check_off_a_word_anywhere_in_any_case_excludes(
    prefix: str, word: str, suffix: str, upper: bool
) -> None:
    name = prefix + (word.upper() if upper else word.title()) + suffix

    assert not check_off(name).eligible


@given(server_id=st.text(min_size=1).filter(lambda s: s.strip() != ""), pad=st.text(" \t"))
def test_with_the_check_on_a_padded_registration_of_this_server_matches(
    server_id: str, pad: str
) -> None:
    result = eligibility(
        "Demo Practice",
        is_practice=True,
        registered_server=pad + server_id.strip() + pad,
        server_id=server_id,
        genuine_server_check=True,
    )

    assert result.eligible
