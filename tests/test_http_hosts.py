"""The status page answers only its own names: the defence against DNS rebinding.

A page on ``evil.example`` that re-points its name at the service's address makes the
browser send ``Host: evil.example`` (and, for a POST from its script, a matching
``Origin``). The tests send exactly that to the running page: the HTTP interface over
SQLite practice databases (``tests.http_fixtures``), and a real ``serve`` process with
``http.allowed_hosts`` set.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from sqlalchemy import func, select

from actors import practice_db
from actors.practice_schema import email_service_commands, init_practice_database
from config import ConfigError, load_settings
from supervisor.http import hosts
from supervisor.http.app import CONTENT_SECURITY_POLICY
from tests.http_fixtures import CHROMIUM, Site
from tests.serve_process import serving

RESTART = "/api/databases/Smile%20Dental/restart"


def _port(site: Site) -> int:
    return site.server.port


def test_a_rebound_name_cannot_restart_a_mailbox(site: Site) -> None:
    port = _port(site)
    status, body = site.request(
        "POST",
        RESTART,
        {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"},
    )
    assert status == 421
    assert "evil.example" in body
    assert site.commands("Smile Dental") == 0


def test_a_browser_on_a_rebound_name_can_neither_read_nor_restart(site: Site) -> None:
    """Chromium resolves ``evil.example`` to the service, as after a rebinding: the page
    loaded from that name, and a script running in it, get 421 and queue nothing."""
    port = _port(site)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--host-resolver-rules=MAP evil.example 127.0.0.1"],
        )
        try:
            page = browser.new_page()
            response = page.goto(f"http://evil.example:{port}/")
            assert response is not None
            assert response.status == 421
            status = page.evaluate(
                "async () => (await fetch('/api/databases/Smile%20Dental/restart',"
                " {method: 'POST'})).status"
            )
        finally:
            browser.close()
    assert status == 421
    assert site.commands("Smile Dental") == 0


def test_a_rebound_name_cannot_read_the_status(site: Site) -> None:
    for path in ("/", "/api/status", "/api/databases/Smile%20Dental/diagnostics", "/metrics"):
        status, _ = site.request("GET", path, {"Host": f"evil.example:{_port(site)}"})
        assert status == 421, path


@pytest.mark.parametrize(
    "name",
    ["localhost", "LOCALHOST", "127.0.0.1", "[::1]", socket.gethostname(), socket.getfqdn()],
)
def test_the_machines_own_names_are_answered(site: Site, name: str) -> None:
    port = _port(site)
    status, _ = site.request(
        "POST", RESTART, {"Host": f"{name}:{port}", "Origin": f"http://{name}:{port}"}
    )
    assert status == 202
    assert site.request("GET", "/api/status", {"Host": f"{name}:{port}"})[0] == 200


def test_an_allowed_host_with_a_foreign_origin_is_refused(site: Site) -> None:
    port = _port(site)
    status, body = site.request(
        "POST", RESTART, {"Host": f"127.0.0.1:{port}", "Origin": f"http://evil.example:{port}"}
    )
    assert status == 403
    assert "cross-site request refused" in body
    assert site.commands("Smile Dental") == 0


def test_the_openapi_description_names_the_421(site: Site) -> None:
    spec = site.json("GET", "/openapi.json")
    assert "421" in spec["paths"]["/api/databases/{name}/restart"]["post"]["responses"]


def test_a_malformed_host_is_a_one_line_400(site: Site) -> None:
    status, body = site.request("GET", "/api/status", {"Host": "a/b@c"})
    assert status == 400
    assert "\n" not in body.strip()
    assert "Traceback" not in body


def test_every_answer_refuses_framing_and_sniffing(site: Site) -> None:
    evil = {"Host": "evil.example"}
    for path, headers in (("/", {}), ("/api/status", {}), ("/static/status.js", {}), ("/", evil)):
        request = urllib.request.Request(site.base + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                got = response.headers
        except urllib.error.HTTPError as exc:
            got = exc.headers
        assert got["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
        assert "frame-ancestors 'none'" in got["Content-Security-Policy"]
        assert got["X-Frame-Options"] == "DENY"
        assert got["X-Content-Type-Options"] == "nosniff"
        assert got["Referrer-Policy"] == "no-referrer"


# --- the rule itself (pure) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("Example.COM:8025", "example.com"),
        ("example.com.", "example.com"),
        ("[::1]:8025", "::1"),
        ("[0:0::1]", "::1"),
        ("192.168.1.10:80", "192.168.1.10"),
        ("example.com:http", None),
        ("[not-v6]:80", None),
        ("", None),
    ],
)
def test_the_host_header_is_read_without_port_case_or_brackets(
    header: str, name: str | None
) -> None:
    assert hosts.host_of(header) == name


def test_configured_names_replace_the_defaults_but_loopback_stays() -> None:
    allowed = hosts.allowed_hosts("0.0.0.0", ["Mail-Server.practice.lan"])
    assert allowed == {"mail-server.practice.lan", "localhost", "127.0.0.1", "::1"}


def test_the_defaults_are_the_listen_address_and_this_machines_names() -> None:
    allowed = hosts.allowed_hosts("192.168.1.10", [])
    assert {"192.168.1.10", socket.gethostname().lower(), "localhost"} <= allowed
    assert "evil.example" not in allowed


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::"])
def test_a_wildcard_listen_address_is_not_a_name_to_answer(wildcard: str) -> None:
    assert wildcard not in hosts.allowed_hosts(wildcard, [])


def test_the_key_is_read_from_the_environment_as_a_comma_list() -> None:
    settings = load_settings(
        environ={"EMAIL_SERVICE_HTTP_ALLOWED_HOSTS": "Mail-Server, [::1],192.168.1.10"}
    )
    assert settings.http.allowed_hosts == ("mail-server", "::1", "192.168.1.10")


def test_a_name_with_a_port_is_refused_in_one_line_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"http\.allowed_hosts.*port") as caught:
        load_settings(environ={}, overrides={"http.allowed_hosts": ["mail-server:8025"]})
    assert "\n" not in str(caught.value)


# --- a real serve process ---------------------------------------------------------------


@dataclass
class Served:
    url: str
    folder: Path

    def request(self, method: str, path: str, headers: dict[str, str]) -> int:
        req = urllib.request.Request(self.url + path, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def command_rows(self) -> int:
        engine = practice_db.make_engine(f"sqlite:///{self.folder / 'Smile Dental'}.sqlite3")
        try:
            with engine.connect() as conn:
                count = conn.execute(
                    select(func.count()).select_from(email_service_commands)
                ).scalar_one()
        finally:
            engine.dispose()
        return int(count)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("hosts")
    folder = root / "practices"
    folder.mkdir()
    init_practice_database(
        f"sqlite:///{folder / 'Smile Dental'}.sqlite3", practice_name="Smile Dental"
    )
    config = root / "service.toml"
    config.write_text(
        '[service]\nserver_id = "HOSTS"\n'
        f'event_store = "sqlite:///{root / "events.sqlite3"}"\n'
        f'[databases]\nserver_url = "sqlite:///{folder}"\n'
        '[http]\nlisten = "127.0.0.1:0"\nallowed_hosts = ["mail-server.practice.lan"]\n'
    )
    with serving(config) as process:
        yield Served(process.url, folder)


def test_serve_refuses_a_rebound_restart_and_queues_nothing(served: Served) -> None:
    port = served.url.rsplit(":", 1)[1]
    status = served.request(
        "POST", RESTART, {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    )
    assert status == 421
    assert served.command_rows() == 0


def test_serve_answers_the_configured_name(served: Served) -> None:
    port = served.url.rsplit(":", 1)[1]
    name = f"mail-server.practice.lan:{port}"
    assert served.request("GET", "/api/status", {"Host": name}) == 200


def test_serve_answers_healthz_on_loopback_whatever_is_configured(served: Served) -> None:
    assert served.request("GET", "/healthz", {}) == 200
