"""Control characters from a sender never reach the operator's terminal: ``mail list`` and
``mail show`` print them escaped; ``--json`` keeps them exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supervisor import exit_codes
from supervisor.commands.common import printable
from tests.test_cli_mail import add_rows, config, folder, inbox, mail, sqlite_url

__all__ = ["config", "folder"]  # fixtures used here

HOSTILE_SUBJECT = "Invoice\x1b]0;pwned\x07\x1b[2J"
HOSTILE_BODY = "line one\n\x1b[31mred\x1b[0m\rline two\x07\n"


@pytest.fixture
def hostile(folder: Path) -> int:
    [row_id] = add_rows(
        sqlite_url(folder), inbox(1, subject=HOSTILE_SUBJECT, body_text=HOSTILE_BODY)
    )
    return row_id


def _no_controls(text: str) -> bool:
    return not any(ord(c) < 32 and c not in "\n" for c in text)


def test_mail_list_prints_a_subjects_control_characters_escaped(
    capsys: pytest.CaptureFixture[str], config: Path, hostile: int
) -> None:
    code, out, _ = mail(capsys, config, "list", "--db", "Smile Dental")
    assert code == exit_codes.OK
    assert _no_controls(out)
    assert "Invoice\\x1b]0;pwned\\x07" in out


def test_mail_show_prints_subject_and_body_escaped_keeping_line_breaks(
    capsys: pytest.CaptureFixture[str], config: Path, hostile: int
) -> None:
    code, out, _ = mail(capsys, config, "show", str(hostile), "--db", "Smile Dental")
    assert code == exit_codes.OK
    assert _no_controls(out)
    assert "line one\n\\x1b[31mred\\x1b[0m\\x0dline two\\x07\n" in out


def test_json_output_stays_faithful(
    capsys: pytest.CaptureFixture[str], config: Path, hostile: int
) -> None:
    _, out, _ = mail(capsys, config, "show", str(hostile), "--db", "Smile Dental", "--json")
    [row] = json.loads(out)
    assert (row["subject"], row["body_text"]) == (HOSTILE_SUBJECT, HOSTILE_BODY)


def test_printable_leaves_ordinary_text_alone() -> None:
    text = "Grüße, 日本語 — ok\tfine"
    assert printable(text, lines=True) == text
