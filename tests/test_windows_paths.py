"""The service's Windows behaviour, each path selected explicitly and run on Linux (issue
15, item 4): a clean stop on the console control events a Windows service gets; the
local zone from Windows' zone name and the ``tzdata`` package, through a daylight-saving
change; a time on every log line; output that survives any code page; an exclusive bind
of the status page's port.

What cannot run here: registering the console handler with Windows
(``SetConsoleCtrlHandler``) and reading the zone name from the registry. Everything
they feed is the code below.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI

from actors.mail.send_window import is_open, next_open, parse_window
from actors.practice_schema import init_practice_database
from actors.sqlite_memory import library_path
from config import load_settings
from events.sql_store import SqlEventStore
from events.store import read_all
from events.types import MailboxStopped, SelfTestPassed, ServiceStopping
from supervisor import exit_codes
from supervisor import local_zone as local_zone_module
from supervisor.http.server import HttpError, HttpServer, bind_options
from supervisor.local_zone import local_zone, windows_zone
from supervisor.log_lines import LocalIsoFormatter
from supervisor.service import Outcome, serve_until_stopped
from supervisor.stop_signals import (
    CTRL_BREAK_EVENT,
    CTRL_C_EVENT,
    CTRL_CLOSE_EVENT,
    CTRL_LOGOFF_EVENT,
    CTRL_SHUTDOWN_EVENT,
    StopRequest,
    console_control_handler,
    stop_signal_names,
)

GIVE_UP = 30.0
"""How long a test waits for the service: far beyond a clean stop, far below forever."""

# --- a clean stop on Windows' console control events --------------------------------


def test_windows_stops_on_ctrl_c_and_ctrl_break_and_linux_on_sigterm_and_sigint() -> None:
    assert stop_signal_names("win32") == ("SIGINT", "SIGBREAK")
    assert stop_signal_names("linux") == ("SIGTERM", "SIGINT")


@pytest.mark.parametrize(
    ("ctrl_type", "reason"),
    [(CTRL_C_EVENT, "CTRL_C_EVENT"), (CTRL_CLOSE_EVENT, "CTRL_CLOSE_EVENT")],
    ids=["wrapper-stop-ctrl-c", "console-close"],
)
def test_a_console_control_event_stops_the_service_cleanly_like_sigterm(
    tmp_path: Path, ctrl_type: int, reason: str
) -> None:
    """WinSW and NSSM stop a service with Ctrl-C; a closed console sends CTRL_CLOSE_EVENT,
    after whose handler Windows ends the process: the handler returns only once the
    service has stopped."""
    practices = tmp_path / "practices"
    practices.mkdir()
    for name in ("Smile Dental", "Harbour Dental"):
        init_practice_database(f"sqlite:///{practices / name}.sqlite3", practice_name=name)
    events = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    settings = load_settings(
        environ={},
        overrides={
            "service.event_store": events,
            "databases.server_url": f"sqlite:///{practices}",
            "health.checkin_seconds": 3.0,
            "mail.io_timeout_seconds": 3.0,
            "http.listen": "127.0.0.1:0",
        },
    )
    request = StopRequest()
    outcome: list[Outcome | BaseException] = []

    def run() -> None:
        try:
            outcome.append(serve_until_stopped(settings, install_signals=False, request=request))
        except BaseException as exc:  # reported by wait_for, and by the outcome check
            outcome.append(exc)

    # The log is made before the service starts: two connections making a new SQLite
    # log at once race on its switch to WAL ("database is locked", seen once in CI).
    store = SqlEventStore(events)
    service = threading.Thread(target=run, daemon=True)
    service.start()
    try:
        wait_for(store, lambda: count(store, SelfTestPassed) >= 2, outcome)
        handled = console_control_handler(request, wait_seconds=GIVE_UP)(ctrl_type)
        if ctrl_type == CTRL_CLOSE_EVENT:
            assert request.stopped.is_set(), "the close handler returned before the stop"
        service.join(GIVE_UP)
        log = [r.event for r in read_all(store)]
    finally:
        request.ask("test over")
        service.join(GIVE_UP)
        store.close()
    assert handled is True
    assert outcome == [Outcome(exit_codes.OK)]
    assert ServiceStopping(reason) in log
    assert sum(isinstance(e, MailboxStopped) for e in log) == 2


def count(store: SqlEventStore, kind: type) -> int:
    return sum(isinstance(r.event, kind) for r in read_all(store))


def wait_for(store: SqlEventStore, done: object, outcome: object = ()) -> None:
    """Block on the log's appends until ``done()`` (no sleeping); fail at once, saying how,
    when the service has ended (``outcome``: what its thread returned or raised)."""
    deadline = time.monotonic() + GIVE_UP
    while not done():  # type: ignore[operator]
        remaining = deadline - time.monotonic()
        assert not outcome, f"the service ended first: {outcome!r}"
        assert remaining > 0, "the service did not get there"
        store.wait_for_append(store.last_seq(), min(remaining, 1.0))


@pytest.mark.parametrize(
    ("ctrl_type", "reason"),
    [(CTRL_BREAK_EVENT, "CTRL_BREAK_EVENT"), (CTRL_SHUTDOWN_EVENT, "CTRL_SHUTDOWN_EVENT")],
)
def test_ctrl_break_and_shutdown_ask_for_the_stop_with_their_name(
    ctrl_type: int, reason: str
) -> None:
    request = StopRequest()
    request.stopped.set()  # as if the service had stopped: shutdown's handler waits for it
    assert console_control_handler(request)(ctrl_type) is True
    assert request.event.is_set()
    assert request.reason == reason


def test_a_user_logging_off_the_server_does_not_stop_the_service() -> None:
    request = StopRequest()
    assert console_control_handler(request)(CTRL_LOGOFF_EVENT) is True
    assert not request.event.is_set()


# --- the local zone on Windows, through a daylight-saving change ----------------------


@pytest.fixture
def windows_like_zones(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ``TZ``, no ``/etc/localtime``, no system zone files: zones only from the
    ``tzdata`` package, as on Windows."""
    monkeypatch.delenv("TZ", raising=False)
    monkeypatch.setattr(local_zone_module, "LOCALTIME", "/nonexistent/localtime")
    zoneinfo.reset_tzpath(to=[])
    zoneinfo.ZoneInfo.clear_cache()
    try:
        yield
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()


def test_the_windows_zone_name_becomes_its_iana_zone_from_tzdata(
    windows_like_zones: None,
) -> None:
    zone = local_zone("win32", lambda: "GMT Standard Time")
    assert zoneinfo.TZPATH == ()
    assert str(zone) == "Europe/London"


def test_a_send_window_follows_the_windows_zone_through_the_clock_change(
    windows_like_zones: None,
) -> None:
    # London went from GMT to BST on Sunday 29 March 2026 at 01:00 UTC.
    zone = local_zone("win32", lambda: "GMT Standard Time")
    window = parse_window("Mon-Fri 07:00-19:00")
    friday_before = datetime(2026, 3, 27, 6, 30, tzinfo=UTC)  # 06:30 GMT: not yet open
    monday_after = datetime(2026, 3, 30, 6, 30, tzinfo=UTC)  # 07:30 BST: open
    assert not is_open(window, friday_before.astimezone(zone))
    assert is_open(window, monday_after.astimezone(zone))
    saturday = datetime(2026, 3, 28, 12, 0, tzinfo=UTC).astimezone(zone)
    opens = next_open(window, saturday)
    assert opens.astimezone(UTC) == datetime(2026, 3, 30, 6, 0, tzinfo=UTC)  # 07:00 BST


def test_an_unknown_windows_zone_name_is_no_zone() -> None:
    assert windows_zone("Nowhere Standard Time") is None
    assert windows_zone(None) is None


def test_tzdata_is_a_windows_dependency() -> None:
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    assert "\"tzdata; sys_platform == 'win32'\"" in pyproject


# --- a time on every log line ----------------------------------------------------------

ISO_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d) INFO supervisor\.test: hello$"
)


def log_line(created: float) -> str:
    record = logging.LogRecord("supervisor.test", logging.INFO, __file__, 1, "hello", (), None)
    record.created = created
    return LocalIsoFormatter().format(record)


def test_a_log_line_starts_with_its_iso_time_and_local_offset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "Europe/London")
    time.tzset()
    try:
        summer = datetime(2026, 7, 1, 11, 0, 0, 250_000, tzinfo=UTC).timestamp()
        winter = datetime(2026, 1, 5, 11, 0, tzinfo=UTC).timestamp()
        assert log_line(summer).startswith("2026-07-01T12:00:00.250+01:00 ")
        assert log_line(winter).startswith("2026-01-05T11:00:00.000+00:00 ")
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_serving_process_logs_each_line_with_its_time() -> None:
    code = (
        "import logging\n"
        "from supervisor.commands.serve import configure_logging\n"
        "configure_logging('INFO')\n"
        "logging.getLogger('supervisor.test').info('hello')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    found = ISO_LINE.match(done.stderr.strip())
    assert found is not None, done.stderr
    assert datetime.fromisoformat(found.group(1)).tzinfo is not None


# --- output in any code page -----------------------------------------------------------


def test_a_table_of_names_outside_the_code_page_prints_to_a_redirected_file(
    tmp_path: Path,
) -> None:
    practices = tmp_path / "practices"
    practices.mkdir()
    name = "Gabinet Łódź 東京"  # Ł, ź and the kanji are not in cp1252; ó is
    init_practice_database(f"sqlite:///{practices / name}.sqlite3", practice_name=name)
    out = tmp_path / "out.txt"
    env = {
        **os.environ,
        "PYTHONIOENCODING": "cp1252",
        "EMAIL_SERVICE_DATABASES_SERVER_URL": f"sqlite:///{practices}",
        "EMAIL_SERVICE_SERVICE_EVENT_STORE": f"sqlite:///{tmp_path / 'events.sqlite3'}",
    }
    env.pop("EMAIL_SERVICE_CONFIG", None)
    with out.open("wb") as file:
        done = subprocess.run(
            [sys.executable, "-m", "supervisor.cli", "databases"],
            stdout=file,
            stderr=subprocess.PIPE,
            env=env,
            timeout=60,
        )
    assert done.returncode == exit_codes.OK, done.stderr.decode("cp1252", "replace")
    printed = out.read_bytes().decode("cp1252")
    assert "Gabinet \\u0141ód\\u017a \\u6771\\u4eac" in printed


def test_json_for_programs_stays_json_in_any_code_page(tmp_path: Path) -> None:
    practices = tmp_path / "practices"
    practices.mkdir()
    name = "Praxis \U0001f9b7 Łódź"  # a tooth beyond U+FFFF, and letters cp1252 lacks
    init_practice_database(f"sqlite:///{practices / 'smile'}.sqlite3", practice_name=name)
    env = {
        **os.environ,
        "PYTHONIOENCODING": "cp1252",
        "EMAIL_SERVICE_DATABASES_SERVER_URL": f"sqlite:///{practices}",
        "EMAIL_SERVICE_SERVICE_EVENT_STORE": f"sqlite:///{tmp_path / 'events.sqlite3'}",
    }
    env.pop("EMAIL_SERVICE_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "supervisor.cli", "databases", "--json"],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == exit_codes.OK, done.stderr.decode("cp1252", "replace")
    [row] = json.loads(done.stdout.decode("cp1252"))
    assert row["practice"] == name


# --- an exclusive bind of the status page's port ---------------------------------------


def test_windows_binds_exclusively_and_never_with_reuse() -> None:
    assert bind_options("win32") == (("SO_EXCLUSIVEADDRUSE", 1),)
    assert all(name not in ("SO_REUSEADDR", "SO_REUSEPORT") for name, _ in bind_options("win32"))
    assert "SO_REUSEPORT" not in dict(bind_options("linux"))


def test_a_second_server_on_the_same_port_fails_to_bind() -> None:
    first = HttpServer(FastAPI(), "127.0.0.1", 0)
    first.start()
    try:
        second = HttpServer(FastAPI(), "127.0.0.1", first.port)
        with pytest.raises(HttpError, match="cannot listen on"):
            second.start()
    finally:
        first.stop()


# --- SQLite's page-cache tuning on Windows too -------------------------------------------


def test_on_windows_sqlite_is_reached_through_the_dll_beside_the_extension() -> None:
    pyd = r"C:\Program Files\Python311\DLLs\_sqlite3.pyd"
    assert library_path(pyd, "win32") == r"C:\Program Files\Python311\DLLs\sqlite3.dll"
    assert library_path("/usr/lib/python3.11/_sqlite3.so", "linux") == (
        "/usr/lib/python3.11/_sqlite3.so"
    )


def test_the_page_cache_tuning_is_tried_on_windows_and_skipped_on_macos() -> None:
    # Here the Windows path finds no sqlite3.dll and says so; Windows' own run loads it.
    code = (
        "from actors.sqlite_memory import disable_page_cache_preallocation as off\n"
        "print(off('win32')); print(off('darwin'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    windows, macos = done.stdout.splitlines()
    assert windows.startswith("SQLite's library cannot be reached")
    assert "sqlite3.dll" in windows
    assert macos == "not done on darwin"
