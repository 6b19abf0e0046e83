"""The status page in a real browser: Debian's Chromium driven by Playwright.

The page is served by the real HTTP interface over SQLite practice databases whose
check-ins the test writes; the service's own end-to-end page test (serve, a wrong SMTP
password, Restart) is in tests/test_health_e2e.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from supervisor.status_rule import RUNNING_TOOLTIP
from tests.http_fixtures import ARTIFACTS, Site


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def indicator(page: Page, name: str) -> Locator:
    return page.locator(".indicator", has_text=name)


def test_running_is_steady_and_not_available_flashes(site: Site, page: Page) -> None:
    site.check_in("Smile Dental", ok=True)
    site.check_in("Bright Teeth", ok=False, summary="SMTP: 535 authentication failed")
    page.goto(site.base + "/")
    steady, flashing = indicator(page, "Smile Dental"), indicator(page, "Bright Teeth")
    expect(steady).to_have_attribute("data-status", "running")
    expect(flashing).to_have_attribute("data-status", "not_available")
    light = flashing.locator(".light")
    assert light.evaluate("e => getComputedStyle(e).animationName") == "flash"
    seconds = float(light.evaluate("e => getComputedStyle(e).animationDuration").rstrip("s"))
    assert 1 / seconds < 3  # well under three flashes a second
    assert steady.locator(".light").evaluate("e => getComputedStyle(e).animationName") == "none"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)


def test_reduced_motion_shows_a_steady_alert_sign_instead(site: Site, browser: Browser) -> None:
    site.check_in("Bright Teeth", ok=False, summary="SMTP down")
    context = browser.new_context(reduced_motion="reduce")
    page = context.new_page()
    page.goto(site.base + "/")
    flashing = indicator(page, "Bright Teeth")
    expect(flashing).to_have_attribute("data-status", "not_available")
    assert flashing.locator(".light").evaluate("e => getComputedStyle(e).animationName") == "none"
    expect(flashing.locator(".alert-icon")).to_be_visible()
    context.close()


def test_hovering_shows_the_contract_tooltip(site: Site, page: Page) -> None:
    site.check_in("Smile Dental", ok=True)
    page.goto(site.base + "/")
    indicator(page, "Smile Dental").hover()
    expect(page.get_by_role("tooltip", name=RUNNING_TOOLTIP)).to_be_visible()


def test_clicking_shows_the_diagnostic_log_and_restart_queues_a_command(
    site: Site, page: Page
) -> None:
    site.check_in(
        "Bright Teeth",
        ok=False,
        summary="SMTP refused the login",
        lines=(("error", "smtp", "535 5.7.8 authentication failed"),),
    )
    page.goto(site.base + "/")
    indicator(page, "Bright Teeth").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("535 5.7.8 authentication failed")
    expect(dialog).to_contain_text("smtp")
    dialog.get_by_role("button", name="Restart Email Service").click()
    expect(dialog.get_by_role("status")).to_contain_text("Restart requested")
    assert site.commands("Bright Teeth") == 1


def test_the_page_refreshes_by_itself_and_announces_the_change(site: Site, page: Page) -> None:
    site.check_in("Smile Dental", ok=False, summary="IMAP down")
    page.goto(site.base + "/")
    item = indicator(page, "Smile Dental")
    expect(item).to_have_attribute("data-status", "not_available")
    site.check_in("Smile Dental", ok=True)
    expect(item).to_have_attribute("data-status", "running", timeout=15_000)
    expect(page.locator("#announcer")).to_contain_text("Smile Dental: Running")


def test_every_indicator_is_reachable_by_keyboard(site: Site, page: Page) -> None:
    page.goto(site.base + "/")
    expect(indicator(page, "Bright Teeth")).to_be_visible()
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert "Bright Teeth" in focused
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
