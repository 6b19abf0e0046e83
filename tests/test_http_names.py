"""Database names with ``/``, ``%``, ``?`` and ``#`` in the HTTP routes and on the page.

The name is one path segment, percent-encoded by the page (``encodeURIComponent``); the
server decodes ``%2F`` before routing, so the routes take the rest of the path as the
name. PostgreSQL holds the database (a file name cannot contain ``/``).
"""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from actors import checkins_table, practice_db
from actors.checkins_table import NewCheckIn
from actors.practice_schema import email_service_commands, init_practice_database
from supervisor.http.app import create_app
from supervisor.http.server import HttpServer
from supervisor.http.source import PracticeStatusSource
from tests.http_fixtures import Site
from tests.servers import POSTGRES_ADMIN_URL, server_url

pytestmark = pytest.mark.postgres


@pytest.fixture
def odd() -> Iterator[tuple[Site, str, str]]:
    """A site over the PostgreSQL server with one practice database whose name holds
    ``/ % ? #``; yields the site, the name and its URL."""
    # No "test" in the name: the eligibility rule would leave it out.
    name = f"pes_route_{uuid.uuid4().hex[:8]} Smile/Dental 100% ?#"
    with _postgres_database(name) as url:
        init_practice_database(url, practice_name="Smile Dental")
        engine = practice_db.make_engine(url)
        with engine.begin() as conn:
            checkins_table.write_checkin(
                conn,
                NewCheckIn(
                    False,
                    "SMTP refused the login",
                    timedelta(seconds=15),
                    "SRV1",
                    "0.1.0",
                    (("error", "smtp", "535 5.7.8 authentication failed"),),
                ),
            )
        source = _OneDatabase(name, url)
        server = HttpServer(create_app(source), "127.0.0.1", 0)
        server.start()
        try:
            yield Site(None, server), name, url  # type: ignore[arg-type]
        finally:
            server.stop()
            engine.dispose()


class _OneDatabase(PracticeStatusSource):
    """The real source, listing just this test's database: the PostgreSQL server is
    shared with other tests, and opening each of their databases would only slow this
    down (discovery has its own tests)."""

    def __init__(self, name: str, url: str) -> None:
        super().__init__(
            server_url(POSTGRES_ADMIN_URL),
            server_id="SRV1",
            genuine_server_check=False,
            grace=timedelta(seconds=15),
            tree_up=lambda: True,
            metrics_text=lambda: "",
        )
        self._only = {name: url}

    def _eligible(self) -> dict[str, str]:
        return dict(self._only)


@contextmanager
def _postgres_database(name: str) -> Iterator[str]:
    """Create the database ``name`` (sent as is: ``text()`` would double its ``%``)."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    quoted = admin.dialect.identifier_preparer.quote_identifier(name)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
        try:
            yield (
                make_url(POSTGRES_ADMIN_URL)
                .set(database=name)
                .render_as_string(hide_password=False)
            )
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        admin.dispose()


def _commands(url: str) -> int:
    engine = practice_db.make_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(email_service_commands)).scalar_one()
            )
    finally:
        engine.dispose()


def test_diagnostics_and_restart_take_a_name_with_slash_percent_question_and_hash(
    odd: tuple[Site, str, str],
) -> None:
    site, name, url = odd
    path = "/api/databases/" + urllib.parse.quote(name, safe="")
    [line] = site.json("GET", path + "/diagnostics")
    assert line["message"] == "535 5.7.8 authentication failed"
    status, body = site.request("POST", path + "/restart")
    assert (status, _commands(url)) == (202, 1), body


def test_the_pages_restart_button_works_for_such_a_name(
    odd: tuple[Site, str, str], browser: Browser
) -> None:
    site, name, url = odd
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(site.base + "/")
        page.locator(".indicator", has_text=name).click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("535 5.7.8 authentication failed")
        dialog.get_by_role("button", name="Restart Email Service").click()
        expect(dialog.get_by_role("status")).to_contain_text("Restart requested")
    finally:
        context.close()
    assert _commands(url) == 1
