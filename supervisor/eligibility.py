"""The eligibility rule: which practice databases the service sends and receives mail for.

This is the one place the contract's "eligible" and the login check are decided
(``CONTRACT.md``, "Words"). Discovery, the ``databases`` and ``login-check`` commands
and the status page all call these functions, so they can never disagree.

Pure: no I/O, no clock; the caller passes what it read from the ``practice`` table
and the settings.
"""

from __future__ import annotations

from dataclasses import dataclass

EXCLUDED_WORDS: tuple[str, ...] = ("demo", "training", "test", "trial", "backup")
"""Words that mark a copy of a practice database when the Genuine Server Check is off."""

LOGIN_WARNING = "This may not be your real database"
"""What the login check shows for a database that is not eligible."""

_CHECK_ON = "Genuine Server Check is on"
_CHECK_OFF = "Genuine Server Check is off"


@dataclass(frozen=True, slots=True)
class Eligibility:
    """Whether one database is eligible, and a short sentence saying why, for people."""

    eligible: bool
    reason: str


def eligibility(
    db_name: str,
    *,
    is_practice: bool,
    registered_server: str | None,
    server_id: str,
    genuine_server_check: bool,
) -> Eligibility:
    """Decide whether the database ``db_name`` is eligible.

    - Not a practice database (no ``practice`` table): never eligible.
    - Genuine Server Check on: eligible iff ``registered_server`` equals ``server_id``,
      both trimmed and compared case-insensitively (``str.casefold``). A missing or
      blank ``registered_server`` never matches. The database name is not looked at.
    - Genuine Server Check off: eligible iff the casefolded name contains none of
      ``EXCLUDED_WORDS`` as a substring, literally: "Contest Dental" contains "test"
      and is not eligible. The reason names the first word of ``EXCLUDED_WORDS`` found.

    ``registered_server`` is ignored when the check is off. Never raises.
    """
    if not is_practice:
        return Eligibility(False, "no practice table")
    if genuine_server_check:
        return _genuine_server_rule(registered_server, server_id)
    return _name_rule(db_name)


def _genuine_server_rule(registered_server: str | None, server_id: str) -> Eligibility:
    registered = (registered_server or "").strip()
    if not registered:
        return Eligibility(False, f"{_CHECK_ON} and registered_server is empty")
    if registered.casefold() == server_id.strip().casefold():
        return Eligibility(
            True, f"{_CHECK_ON} and registered_server {registered!r} matches this server"
        )
    return Eligibility(
        False,
        f"{_CHECK_ON} and registered_server {registered!r} is not this server {server_id!r}",
    )


def _name_rule(db_name: str) -> Eligibility:
    folded = db_name.casefold()
    for word in EXCLUDED_WORDS:
        if word in folded:
            return Eligibility(False, f"name contains {word!r} ({_CHECK_OFF})")
    return Eligibility(True, f"name contains none of {', '.join(EXCLUDED_WORDS)} ({_CHECK_OFF})")


def login_warning(e: Eligibility) -> str | None:
    """Return ``LOGIN_WARNING`` for a database that is not eligible, None for one that is.

    Takes the result of ``eligibility`` rather than re-deciding, so the login check is
    the same rule as the service's by construction.
    """
    return None if e.eligible else LOGIN_WARNING
