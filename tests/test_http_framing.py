"""The status page refuses to be framed, and its content security policy fits it.

Debian's Chromium (Playwright) opens a page served on another local origin (a plain
``http.server`` on ``localhost``, the status page being on ``127.0.0.1``) that embeds the
status page in an iframe, next to a control iframe of a page without the headers: the
control renders, the status page does not. The page itself, under its own policy, renders,
opens a diagnostic log and queues a restart with no policy violation.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.http_fixtures import Site

CONTROL_TEXT = "control frame rendered"


class _Embedder(http.server.BaseHTTPRequestHandler):
    status_url = ""

    def do_GET(self) -> None:
        if self.path == "/control":
            body = f"<!doctype html><p id=control>{CONTROL_TEXT}</p>"
        else:
            body = (
                "<!doctype html><title>another site</title>"
                f'<iframe id="status" name="status" src="{self.status_url}"></iframe>'
                '<iframe id="control" name="control" src="/control"></iframe>'
            )
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def embedder(site: Site) -> Iterator[str]:
    """The address of a page on another origin (``localhost``, another port) that frames
    the status page."""
    handler = type("Embedder", (_Embedder,), {"status_url": site.base + "/"})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def test_another_origin_cannot_show_the_status_page_in_a_frame(
    site: Site, embedder: str, page: Page
) -> None:
    site.check_in("Smile Dental", ok=True)
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    page.goto(embedder, wait_until="load")  # "load" waits for both frames
    control = page.frame(name="control")
    assert control is not None
    expect(control.locator("#control")).to_have_text(CONTROL_TEXT)
    status = page.frame(name="status")
    assert status is not None
    assert status.evaluate("() => document.querySelector('#databases') === null")
    assert any("frame-ancestors 'none'" in text for text in messages), messages


def _violations_recorded(page: Page) -> None:
    page.add_init_script(
        "window.__violations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )


def test_the_page_works_under_its_own_policy(site: Site, page: Page) -> None:
    site.check_in("Smile Dental", ok=True)
    site.check_in(
        "Bright Teeth",
        ok=False,
        summary="SMTP refused the login",
        lines=(("error", "smtp", "535 5.7.8 authentication failed"),),
    )
    errors: list[ConsoleMessage] = []
    page.on("console", lambda m: errors.append(m) if m.type == "error" else None)
    _violations_recorded(page)
    page.goto(site.base + "/")
    broken = page.locator(".indicator", has_text="Bright Teeth")
    expect(broken).to_have_attribute("data-status", "not_available")
    assert broken.locator(".light").evaluate("e => getComputedStyle(e).animationName") == "flash"
    broken.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("535 5.7.8 authentication failed")
    dialog.get_by_role("button", name="Restart Email Service").click()
    expect(dialog).to_contain_text("Restart requested")
    assert page.evaluate("window.__violations") == []
    assert [m.text for m in errors if "Content Security Policy" in m.text] == []
