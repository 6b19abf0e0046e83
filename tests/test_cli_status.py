"""``email-service status`` and ``diagnostics``: the workstation's view from the command line,
read from the practice databases' own check-in tables (SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, insert

from actors import checkins_table, practice_db
from actors.checkins_table import NewCheckIn
from actors.practice_schema import email_service_checkins, init_practice_database
from supervisor import exit_codes, sqlite_status
from supervisor.cli import main
from supervisor.status_rule import NEVER_TOOLTIP, RUNNING_TOOLTIP
from tests.servers import MARIADB_ADMIN_URL, POSTGRES_ADMIN_URL, named_databases, server_url

INTERVAL = timedelta(seconds=15)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_config(path: Path, server: str) -> Path:
    path.write_text(
        f'[service]\nserver_id = "SRV1"\n[databases]\nserver_url = {json.dumps(server)}\n'
    )
    return path


def check_in(
    url: str, *, ok: bool, summary: str = "", lines: tuple[tuple[str, str, str], ...] = ()
) -> None:
    engine = practice_db.make_engine(url)
    try:
        with engine.begin() as conn:
            checkins_table.write_checkin(
                conn, NewCheckIn(ok, summary, INTERVAL, "SRV1", "0.1.0", lines)
            )
    finally:
        engine.dispose()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    practices = tmp_path / "practices"
    practices.mkdir()
    for name in ("Smile Dental", "Bright Teeth", "Quiet Clinic", "Demo Practice"):
        init_practice_database(f"sqlite:///{practices / name}.sqlite3", practice_name=name)
    return practices


def url_of(folder: Path, name: str) -> str:
    return f"sqlite:///{folder / name}.sqlite3"


@pytest.fixture
def config(tmp_path: Path, folder: Path) -> Path:
    return write_config(tmp_path / "service.toml", f"sqlite:///{folder}")


def test_status_json_reports_each_eligible_database_with_the_contract_keys(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    check_in(url_of(folder, "Smile Dental"), ok=True)
    check_in(url_of(folder, "Bright Teeth"), ok=False, summary="SMTP: 535 authentication failed")
    code, out, _ = run(capsys, "--config", str(config), "status", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert code == exit_codes.NOT_ALL_RUNNING
    assert set(rows) == {"Smile Dental", "Bright Teeth", "Quiet Clinic"}  # not "Demo Practice"
    assert set(rows["Smile Dental"]) == {"name", "status", "tooltip", "last_checkin_at"}
    assert (rows["Smile Dental"]["status"], rows["Smile Dental"]["tooltip"]) == (
        "running",
        RUNNING_TOOLTIP,
    )
    assert (rows["Bright Teeth"]["status"], rows["Bright Teeth"]["tooltip"]) == (
        "not_available",
        "SMTP: 535 authentication failed",
    )
    assert (rows["Quiet Clinic"]["status"], rows["Quiet Clinic"]["tooltip"]) == (
        "not_available",
        NEVER_TOOLTIP,
    )


def test_status_exits_zero_when_every_database_is_running(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    check_in(url_of(folder, "Smile Dental"), ok=True)
    code, out, _ = run(capsys, "--config", str(config), "status", "--db", "Smile Dental")
    assert code == exit_codes.OK
    assert "running" in out.splitlines()[2]


def test_status_judges_lateness_by_the_database_clock(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    engine = practice_db.make_engine(url_of(folder, "Smile Dental"))
    with engine.begin() as conn:
        now = checkins_table.server_now(conn)
        conn.execute(
            insert(email_service_checkins).values(
                checked_in_at=now - timedelta(minutes=10),
                next_checkin_due_at=now - timedelta(minutes=10) + INTERVAL,
                ok=True,
                summary="",
                server_name="SRV1",
                service_version="0.1.0",
            )
        )
    engine.dispose()
    code, out, _ = run(capsys, "--config", str(config), "status", "--db", "Smile Dental", "--json")
    (row,) = json.loads(out)
    assert code == exit_codes.NOT_ALL_RUNNING
    assert row["status"] == "not_available"
    assert row["tooltip"].startswith("Nothing heard from the email service since ")
    assert "(10 min" in row["tooltip"]


def test_status_of_an_unknown_database_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    code, _, err = run(capsys, "--config", str(config), "status", "--db", "Nobody")
    assert code == exit_codes.NO_INPUT
    assert err == "email-service: no database named 'Nobody' on the server (exit 66 NO_INPUT)\n"


def test_diagnostics_shows_the_newest_failing_checkins_lines(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    url = url_of(folder, "Bright Teeth")
    check_in(url, ok=False, summary="old", lines=(("error", "imap", "older failure"),))
    check_in(
        url,
        ok=False,
        summary="SMTP refused the login",
        lines=(("error", "smtp", "535 5.7.8 authentication failed"),),
    )
    check_in(url, ok=True)
    code, out, _ = run(
        capsys, "--config", str(config), "diagnostics", "--db", "Bright Teeth", "--json"
    )
    assert code == exit_codes.OK
    lines = json.loads(out)
    assert [(x["level"], x["component"], x["message"]) for x in lines] == [
        ("error", "smtp", "535 5.7.8 authentication failed")
    ]


def test_diagnostics_without_any_line_says_so(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    code, out, _ = run(capsys, "--config", str(config), "diagnostics", "--db", "Quiet Clinic")
    assert (code, out) == (exit_codes.OK, "Quiet Clinic: no diagnostic lines\n")


@pytest.mark.parametrize(
    "admin_url", [POSTGRES_ADMIN_URL, MARIADB_ADMIN_URL], ids=["pg", "mariadb"]
)
def test_status_reads_checkins_on_a_database_server(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, admin_url: str
) -> None:
    name = f"pes_status_{uuid.uuid4().hex[:8]}"
    with named_databases(admin_url, [name]) as urls:
        init_practice_database(urls[name], practice_name="Server Practice")
        check_in(urls[name], ok=True)
        config = write_config(tmp_path / "service.toml", server_url(admin_url))
        code, out, _ = run(capsys, "--config", str(config), "status", "--db", name, "--json")
    (row,) = json.loads(out)
    assert (code, row["status"]) == (exit_codes.OK, "running")


def test_diagnostics_say_when_two_services_check_in_to_one_database(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    url = url_of(folder, "Smile Dental")
    check_in(url, ok=True)
    engine = practice_db.make_engine(url)
    with engine.begin() as conn:
        checkins_table.write_checkin(conn, NewCheckIn(True, "", INTERVAL, "OTHER-SERVER", "0.1.0"))
    engine.dispose()
    code, out, _ = run(
        capsys, "--config", str(config), "diagnostics", "--db", "Smile Dental", "--json"
    )
    (line,) = json.loads(out)
    assert (code, line["component"], line["level"]) == (exit_codes.OK, "service", "error")
    assert line["message"].startswith(
        "Two email services are checking in to this database: OTHER-SERVER and SRV1."
    )


def test_a_status_that_is_not_all_running_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    check_in(url_of(folder, "Smile Dental"), ok=False, summary="SMTP: 535 authentication failed")
    code, _, err = run(capsys, "--config", str(config), "status")
    assert (code, err) == (
        exit_codes.NOT_ALL_RUNNING,
        "email-service: not every database is running (exit 1 NOT_ALL_RUNNING)\n",
    )


@pytest.mark.parametrize(
    "command", [["status", "--db", "Smile Dental"], ["diagnostics", "--db", "Smile Dental"]]
)
def test_status_and_diagnostics_read_the_check_ins_through_their_indexes(
    capsys: pytest.CaptureFixture[str],
    config: Path,
    folder: Path,
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The regular path, through SQLAlchemy (tests/test_sqlite_status.py: the SQLite one).
    monkeypatch.setattr(sqlite_status, "read_status", lambda *_args: None)
    for n in range(30):
        check_in(url_of(folder, "Smile Dental"), ok=n % 7 != 0, lines=(("error", "smtp", "x"),))
    seen: list[str] = []

    def trace(dbapi_connection: object, _record: object) -> None:
        dbapi_connection.set_trace_callback(seen.append)  # type: ignore[attr-defined]

    event.listen(Engine, "connect", trace)
    try:
        run(capsys, "--config", str(config), *command)
    finally:
        event.remove(Engine, "connect", trace)
    reads = [s for s in seen if s.lstrip().upper().startswith("SELECT") and "email_service_" in s]
    conn = sqlite3.connect(folder / "Smile Dental.sqlite3")
    try:
        plans = [" | ".join(r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + s)) for s in reads]
    finally:
        conn.close()
    # Each read is a search by an index, or a walk down the check-ins' time index from the
    # newest one, never a scan of a whole table.
    scans = [p for p in plans if re.search(r"SCAN email_service_\w+\b(?! USING)", p)]
    assert (reads != [], scans) == (True, []), plans
