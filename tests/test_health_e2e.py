"""The health issue end to end: ``email-service serve`` seen through Debian's Chromium.

One ``serve`` process (a subprocess, as in production) serves two SQLite practice
databases whose ``email_settings`` point at one aiosmtpd server that requires AUTH:
``Smile Dental`` has the right password, ``Bright Teeth`` a wrong one. Check-ins every
2 s, so the page changes within seconds. The tests run in file order on that one service:
the last two press Restart, the last one after fixing the password.

Both practices share the server's host and port, with their own accounts: the probe
limiter (one probe connection a minute) counts per account, so the healthy practice's
probe never delays the other's, and a person's Restart after a fix probes at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from sqlalchemy import Engine, select, update

from actors import practice_db
from actors.practice_schema import email_service_checkins as checkins
from actors.practice_schema import email_service_commands as commands
from actors.practice_schema import email_settings, init_practice_database
from supervisor.status_rule import RUNNING_TOOLTIP
from tests.http_fixtures import ARTIFACTS
from tests.mail_helpers import wait_until
from tests.serve_process import serving
from tests.smtp_servers import RecordingSmtpServer

SCREENSHOT = ARTIFACTS / "health-e2e.png"

HEALTHY, BROKEN = "Smile Dental", "Bright Teeth"
PASSWORDS = {"smile@smile.test": "smile-secret-1", "bright@bright.test": "bright-secret-2"}
WRONG_PASSWORD = "not-the-password-7"
REJECTED = "535 5.7.8 Authentication credentials invalid"
"""What aiosmtpd answers a wrong password (``tests.smtp_servers``)."""

START_SECONDS = 60.0
"""The longest the service may take to print its status page address."""
CHANGE_MS = 30_000
"""How long the page may take to show a change: a few 2 s check-ins and 3 s refreshes,
with room for a busy machine; well under the probe limiter's minute, so a Restart after
the fix that waited out the minute would fail the last test."""


@dataclass
class Service:
    """The running ``serve`` process, its practice databases and its page."""

    folder: Path
    url: str = ""
    engines: dict[str, Engine] = field(default_factory=dict)

    def engine(self, name: str) -> Engine:
        if name not in self.engines:
            self.engines[name] = practice_db.make_engine(f"sqlite:///{self.folder / name}.sqlite3")
        return self.engines[name]

    def command_rows(self, name: str) -> list[tuple[int, datetime | None, str | None]]:
        """``(id, handled_at, outcome)`` of every command row, oldest first."""
        with self.engine(name).connect() as conn:
            rows = conn.execute(
                select(commands.c.id, commands.c.handled_at, commands.c.outcome).order_by(
                    commands.c.id
                )
            ).all()
        return [(int(r.id), r.handled_at, r.outcome) for r in rows]

    def checkins_after(self, name: str, moment: datetime) -> list[tuple[bool, str]]:
        """``(ok, summary)`` of the check-ins written after ``moment``, oldest first."""
        with self.engine(name).connect() as conn:
            rows = conn.execute(
                select(checkins.c.ok, checkins.c.summary)
                .where(checkins.c.checked_in_at > moment)
                .order_by(checkins.c.id)
            ).all()
        return [(bool(r.ok), r.summary or "") for r in rows]


def _configure(url: str, user: str, password: str, smtp: RecordingSmtpServer) -> None:
    engine = practice_db.make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                update(email_settings).values(
                    smtp_host=smtp.host,
                    smtp_port=smtp.port,
                    smtp_security="none",
                    smtp_username=user,
                    smtp_password=password,
                    from_address=user,
                )
            )
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def smtp() -> Iterator[RecordingSmtpServer]:
    with RecordingSmtpServer(users=PASSWORDS) as server:
        yield server


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, smtp: RecordingSmtpServer
) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("health-e2e")
    folder = root / "practices"
    folder.mkdir()
    passwords = {HEALTHY: PASSWORDS["smile@smile.test"], BROKEN: WRONG_PASSWORD}
    users = {HEALTHY: "smile@smile.test", BROKEN: "bright@bright.test"}
    for name in (HEALTHY, BROKEN):
        url = f"sqlite:///{folder / name}.sqlite3"
        init_practice_database(url, practice_name=name)
        _configure(url, users[name], passwords[name], smtp)
    config = root / "service.toml"
    config.write_text(
        '[service]\nserver_id = "E2E"\n'
        f'event_store = "sqlite:///{root / "events.sqlite3"}"\n'
        f'[databases]\nserver_url = "sqlite:///{folder}"\n'
        "[health]\ncheckin_seconds = 2.0\nprobe_seconds = 2.0\ngrace_seconds = 2.0\n"
        "[mail]\nio_timeout_seconds = 2.0\n"
        '[http]\nlisten = "127.0.0.1:0"\n'
    )
    with serving(config, START_SECONDS) as served:
        running = Service(folder, served.url)
        try:
            yield running
        finally:
            for engine in running.engines.values():
                engine.dispose()


@pytest.fixture
def page(browser: Browser, service: Service) -> Iterator[Page]:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(service.url + "/")
        yield page
    finally:
        context.close()


def indicator(page: Page, name: str) -> Locator:
    return page.locator(".indicator", has_text=name)


def animation(light: Locator) -> str:
    return str(light.evaluate("e => getComputedStyle(e).animationName"))


def open_details(page: Page, name: str) -> Locator:
    indicator(page, name).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    return dialog


def test_the_healthy_database_is_steady_and_the_wrong_password_flashes(page: Page) -> None:
    steady, flashing = indicator(page, HEALTHY), indicator(page, BROKEN)
    expect(steady).to_have_attribute("data-status", "running", timeout=CHANGE_MS)
    expect(flashing).to_have_attribute("data-status", "not_available", timeout=CHANGE_MS)
    assert animation(steady.locator(".light")) == "none"
    assert animation(flashing.locator(".light")) == "flash"


def test_the_steady_lights_tooltip_says_it_operates_normally(page: Page) -> None:
    steady = indicator(page, HEALTHY)
    expect(steady).to_have_attribute("data-status", "running", timeout=CHANGE_MS)
    steady.hover()
    expect(page.get_by_role("tooltip", name=RUNNING_TOOLTIP)).to_be_visible()


def test_the_flashing_lights_tooltip_names_smtp_and_the_servers_reply(page: Page) -> None:
    flashing = indicator(page, BROKEN)
    expect(flashing).to_have_attribute("data-status", "not_available", timeout=CHANGE_MS)
    flashing.hover()
    tooltip = page.get_by_role("tooltip", name="Sending (SMTP)")
    expect(tooltip).to_be_visible()
    expect(tooltip).to_contain_text(REJECTED)


def test_clicking_the_flashing_light_shows_a_diagnostic_line_naming_smtp(page: Page) -> None:
    expect(indicator(page, BROKEN)).to_have_attribute("data-status", "not_available")
    dialog = open_details(page, BROKEN)
    line = dialog.locator("#diagnostics tbody tr", has_text=REJECTED)
    expect(line).to_have_count(1)
    expect(line.locator("td").nth(1)).to_have_text("smtp")
    expect(dialog.get_by_role("button", name="Restart Email Service")).to_be_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_restart_inserts_a_command_row_that_the_service_handles(
    page: Page, service: Service
) -> None:
    before = len(service.command_rows(BROKEN))
    dialog = open_details(page, BROKEN)
    dialog.get_by_role("button", name="Restart Email Service").click()
    expect(dialog.get_by_role("status")).to_contain_text("Restart requested")
    wait_until(
        lambda: all(row[1] is not None for row in service.command_rows(BROKEN)[before:]),
        "the restart command to be handled",
        timeout=CHANGE_MS / 1000,
    )
    [(_, handled_at, outcome)] = service.command_rows(BROKEN)[before:]
    assert handled_at is not None
    assert outcome is not None
    assert outcome.startswith("restarting the email service for this database")


def test_a_restart_without_the_fix_keeps_the_light_flashing(page: Page, service: Service) -> None:
    # Given the restart of the previous test was handled (the password is still wrong),
    [*_, (_, handled_at, _)] = service.command_rows(BROKEN)
    assert handled_at is not None

    # the new incarnation's first self-test verdict must not be a pass made without
    # checking (it may say "restarting" first: those check-ins do not decide).
    def verdicts() -> list[tuple[bool, str]]:
        return [
            (ok, summary)
            for ok, summary in service.checkins_after(BROKEN, handled_at)
            if ok or "SMTP" in summary
        ]

    wait_until(lambda: bool(verdicts()), "a self-test check-in after the restart", 30.0)
    ok, summary = verdicts()[0]
    assert (ok, REJECTED in summary) == (False, True)
    expect(indicator(page, BROKEN)).to_have_attribute("data-status", "not_available")


def test_after_the_password_is_fixed_restart_turns_the_light_steady(
    page: Page, service: Service
) -> None:
    flashing = indicator(page, BROKEN)
    expect(flashing).to_have_attribute("data-status", "not_available")
    with service.engine(BROKEN).begin() as conn:
        conn.execute(update(email_settings).values(smtp_password=PASSWORDS["bright@bright.test"]))
    dialog = open_details(page, BROKEN)
    dialog.get_by_role("button", name="Restart Email Service").click()
    expect(dialog.get_by_role("status")).to_contain_text("Restart requested")
    page.keyboard.press("Escape")
    expect(flashing).to_have_attribute("data-status", "running", timeout=CHANGE_MS)
    assert animation(flashing.locator(".light")) == "none"
