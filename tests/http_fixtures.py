"""A running HTTP interface over a folder of SQLite practice databases, for the HTTP tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright
from sqlalchemy import func, select

from actors import checkins_table, practice_db
from actors.checkins_table import NewCheckIn
from actors.practice_schema import email_service_commands, init_practice_database
from supervisor.http.app import create_app
from supervisor.http.server import HttpServer
from supervisor.http.source import PracticeStatusSource

INTERVAL = timedelta(seconds=15)
NAMES = ("Smile Dental", "Bright Teeth", "Demo Practice")


@dataclass
class Site:
    """The server, its folder, and a switch for the tree's health."""

    folder: Path
    server: HttpServer
    tree: dict[str, bool] = field(default_factory=lambda: {"up": True})

    @property
    def base(self) -> str:
        return self.server.url.rstrip("/")

    def url_of(self, name: str) -> str:
        return f"sqlite:///{self.folder / name}.sqlite3"

    def check_in(
        self,
        name: str,
        *,
        ok: bool,
        summary: str = "",
        lines: tuple[tuple[str, str, str], ...] = (),
    ) -> None:
        engine = practice_db.make_engine(self.url_of(name))
        try:
            with engine.begin() as conn:
                checkins_table.write_checkin(
                    conn, NewCheckIn(ok, summary, INTERVAL, "SRV1", "0.1.0", lines)
                )
        finally:
            engine.dispose()

    def commands(self, name: str) -> int:
        """How many rows the database's ``email_service_commands`` holds."""
        engine = practice_db.make_engine(self.url_of(name))
        try:
            with engine.connect() as conn:
                count = conn.execute(
                    select(func.count()).select_from(email_service_commands)
                ).scalar_one()
        finally:
            engine.dispose()
        return int(count)

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        req = urllib.request.Request(self.base + path, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def json(self, method: str, path: str, headers: dict[str, str] | None = None) -> Any:
        status, body = self.request(method, path, headers)
        assert status < 300, (status, body)
        return json.loads(body)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    folder = tmp_path / "practices"
    folder.mkdir()
    for name in NAMES:
        init_practice_database(f"sqlite:///{folder / name}.sqlite3", practice_name=name)
    tree = {"up": True}
    source = PracticeStatusSource(
        f"sqlite:///{folder}",
        server_id="SRV1",
        genuine_server_check=False,
        grace=timedelta(seconds=15),
        tree_up=lambda: tree["up"],
        metrics_text=lambda: "# TYPE email_service_up gauge\nemail_service_up 1\n",
        list_seconds=0.0,
    )
    server = HttpServer(create_app(source), "127.0.0.1", 0)
    server.start()
    try:
        yield Site(folder, server, tree)
    finally:
        server.stop()


CHROMIUM = "/usr/bin/chromium"
"""Debian's Chromium (scripts/test-services.sh installs it); never a downloaded browser."""

ARTIFACTS = Path(__file__).resolve().parent.parent / "var" / "artifacts"
"""Where browser tests keep their screenshots (CI artifacts)."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium through Playwright, one per test module."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run scripts/test-services.sh"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            launched.close()
