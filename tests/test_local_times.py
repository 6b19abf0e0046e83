"""Times people read are local: ``supervisor.human_time`` for the command line (``status``,
``diagnostics``, ``mail list``), and the status page in the browser's own zone (Debian's
Chromium with a time zone set by Playwright). JSON keeps UTC ISO 8601.

Asia/Kolkata (UTC+05:30, no daylight saving) makes a local time impossible to mistake for
UTC; Europe/Berlin shows the zone's name following daylight saving.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import insert, select

from actors import practice_db
from actors.practice_schema import (
    email_messages,
    email_service_checkins,
    email_service_diagnostics,
)
from supervisor.cli import main
from supervisor.human_time import local_sentence, local_text
from tests.http_fixtures import Site

KOLKATA = ZoneInfo("Asia/Kolkata")
BERLIN = ZoneInfo("Europe/Berlin")


# --- the helper ---------------------------------------------------------------------------


def test_a_naive_utc_time_is_shown_in_the_zone_to_the_second_with_its_name() -> None:
    assert local_text(datetime(2026, 12, 2, 8, 14, 3, 900_000), BERLIN) == (
        "2026-12-02 09:14:03 CET"
    )


def test_summer_time_is_named_as_such() -> None:
    assert local_text(datetime(2026, 7, 2, 8, 14, 3), BERLIN) == "2026-07-02 10:14:03 CEST"


def test_an_aware_time_is_converted_not_relabelled() -> None:
    moment = datetime(2026, 12, 2, 9, 14, 3, tzinfo=BERLIN)
    assert local_text(moment, KOLKATA) == "2026-12-02 13:44:03 IST"


def test_no_time_is_an_empty_text() -> None:
    assert local_text(None) == ""


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2999, 1, 1)))
def test_in_utc_the_text_is_the_stored_time_to_the_second(moment: datetime) -> None:
    assert local_text(moment, UTC) == f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def test_a_stored_sentence_with_a_utc_time_reads_local() -> None:
    text = "Nothing heard from the email service since 2026-12-02 08:14:03 UTC (2 min ago)"
    assert local_sentence(text, BERLIN) == (
        "Nothing heard from the email service since 2026-12-02 09:14:03 CET (2 min ago)"
    )


def test_a_stored_span_from_one_utc_time_to_another_reads_local() -> None:
    text = "Email was not available for 14 min, from 2026-12-02 08:00:00 to 2026-12-02 08:14:03 UTC"
    assert local_sentence(text, KOLKATA) == (
        "Email was not available for 14 min, from 2026-12-02 13:30:00 IST to "
        "2026-12-02 13:44:03 IST"
    )


def test_a_sentence_without_a_utc_time_is_left_as_it_is() -> None:
    text = "SMTP: 535 authentication failed at 2026-12-02 08:14:03"  # no zone: not ours
    assert local_sentence(text, KOLKATA) == text


# --- the command line ---------------------------------------------------------------------


@pytest.fixture
def kolkata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")


def _config(site: Site, tmp_path: Path) -> str:
    path = tmp_path / "service.toml"
    path.write_text(f'[databases]\nserver_url = "sqlite:///{site.folder}"\n')
    return str(path)


def _newest_checkin_at(site: Site, name: str) -> datetime:
    engine = practice_db.make_engine(site.url_of(name))
    try:
        with engine.connect() as conn:
            value = conn.execute(
                select(email_service_checkins.c.checked_in_at)
                .order_by(email_service_checkins.c.id.desc())
                .limit(1)
            ).scalar_one()
    finally:
        engine.dispose()
    assert isinstance(value, datetime)
    return value


def test_status_shows_the_last_check_in_in_the_servers_zone(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str], kolkata: None
) -> None:
    site.check_in("Smile Dental", ok=True)
    at = _newest_checkin_at(site, "Smile Dental")
    assert main(["--config", _config(site, tmp_path), "status", "--db", "Smile Dental"]) == 0
    out = capsys.readouterr().out
    assert local_text(at, KOLKATA) in out
    assert local_text(at, KOLKATA).endswith(" IST")


def test_status_json_keeps_utc(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str], kolkata: None
) -> None:
    site.check_in("Smile Dental", ok=True)
    at = _newest_checkin_at(site, "Smile Dental")
    main(["--config", _config(site, tmp_path), "status", "--db", "Smile Dental", "--json"])
    [row] = json.loads(capsys.readouterr().out)
    assert row["last_checkin_at"] == at.isoformat() + "Z"


def test_diagnostics_show_when_each_line_was_logged_in_the_servers_zone(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str], kolkata: None
) -> None:
    site.check_in(
        "Bright Teeth", ok=False, summary="SMTP down", lines=(("error", "smtp", "refused"),)
    )
    engine = practice_db.make_engine(site.url_of("Bright Teeth"))
    with engine.connect() as conn:
        logged = conn.execute(select(email_service_diagnostics.c.logged_at)).scalar_one()
    engine.dispose()
    main(["--config", _config(site, tmp_path), "diagnostics", "--db", "Bright Teeth"])
    assert local_text(logged, KOLKATA) in capsys.readouterr().out


def test_mail_list_shows_each_messages_time_in_the_servers_zone(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str], kolkata: None
) -> None:
    created = datetime(2026, 12, 2, 8, 14, 3)
    engine = practice_db.make_engine(site.url_of("Smile Dental"))
    with engine.begin() as conn:
        conn.execute(
            insert(email_messages).values(
                folder="outbox", to_addrs="pat@example.org", subject="Hi", created_at=created
            )
        )
    engine.dispose()
    config = _config(site, tmp_path)
    main(["--config", config, "mail", "list", "--db", "Smile Dental", "--folder", "outbox"])
    assert "2026-12-02 13:44:03 IST" in capsys.readouterr().out
    main(
        ["--config", config, "mail", "list", "--db", "Smile Dental", "--folder", "outbox", "--json"]
    )
    [row] = json.loads(capsys.readouterr().out)
    assert row["created_at"] == "2026-12-02T08:14:03"


# --- the status page, in the browser's zone -----------------------------------------------


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page whose browser runs in Asia/Kolkata; Chromium names zones by offset there."""
    context = browser.new_context(timezone_id="Asia/Kolkata")
    try:
        yield context.new_page()
    finally:
        context.close()


def in_browser(moment: datetime) -> str:
    """How Chromium (en-GB, short zone name) shows a naive UTC ``moment`` in Kolkata."""
    local = moment.replace(tzinfo=UTC).astimezone(KOLKATA)
    return f"{local:%Y-%m-%d %H:%M:%S} GMT+5:30"


def _late_checkin(site: Site, name: str, at: datetime) -> None:
    engine = practice_db.make_engine(site.url_of(name))
    with engine.begin() as conn:
        conn.execute(
            insert(email_service_checkins).values(
                checked_in_at=at,
                next_checkin_due_at=at + timedelta(seconds=15),
                ok=True,
                summary="",
                server_name="SRV1",
                service_version="0.1.0",
            )
        )
    engine.dispose()


def test_the_dialog_shows_the_diagnostic_times_and_last_check_in_in_the_browsers_zone(
    site: Site, page: Page
) -> None:
    site.check_in(
        "Bright Teeth", ok=False, summary="SMTP down", lines=(("error", "smtp", "refused"),)
    )
    at = _newest_checkin_at(site, "Bright Teeth")
    page.goto(site.base + "/")
    page.locator(".indicator", has_text="Bright Teeth").click()
    dialog = page.get_by_role("dialog")
    cell = dialog.locator("#diagnostics tbody tr td").first
    expect(cell).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d GMT\+5:30$"))
    expect(dialog.locator("#details-checkin")).to_have_text(f"Last check-in: {in_browser(at)}")


def test_a_late_check_ins_tooltip_names_the_time_in_the_browsers_zone(
    site: Site, page: Page
) -> None:
    _late_checkin(site, "Smile Dental", datetime(2026, 1, 5, 8, 0, 0))
    page.goto(site.base + "/")
    tooltip = page.locator(".indicator", has_text="Smile Dental").locator("..").locator(".tooltip")
    expect(tooltip).to_contain_text("since 2026-01-05 13:30:00 GMT+5:30 (")
