"""Discovery: every database on the server, practice or not, eligible or not, on a SQLite
folder, real PostgreSQL, and real MariaDB through PyMySQL and through pyodbc/unixODBC.

Server tests create their databases with a unique prefix and look only at those
(``only=``), so they neither see nor disturb other tests' databases.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.dialects import mssql, mysql, postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from actors.mail import redact
from actors.practice_db import PracticeRow, make_engine, read_practice
from actors.practice_schema import init_practice_database
from supervisor.discovery import (
    DatabaseInfo,
    DiscoveryError,
    OpenEngine,
    database_url,
    discover,
    error_line,
    list_databases,
    list_statement,
)
from supervisor.eligibility import Eligibility, eligibility
from tests.servers import (
    MARIADB_ADMIN_URL,
    MARIADB_ODBC_DRIVER,
    MARIADB_ODBC_SERVER_URL,
    POSTGRES_ADMIN_URL,
    named_databases,
    server_url,
)

SERVER_ID = "SRV1"
NOT_PRACTICE = "semi;colon [x]"
REGISTERED: dict[str, str | None] = {
    # practice databases and their practice.registered_server
    "Smile Dental": "SRV1",
    'O\'Brien "Family" Dental': "  srv1 ",  # trimmed, compared case-insensitively
    "Zahnarztpraxis Müller": "OTHER-SERVER",
    "Contest Dental": "SRV1",
    "Demo Practice": None,
    "Training 2026": "srv1",
}
NAMES = [*REGISTERED, NOT_PRACTICE]
ELIGIBLE_CHECK_OFF = {"Smile Dental", 'O\'Brien "Family" Dental', "Zahnarztpraxis Müller"}
ELIGIBLE_CHECK_ON = {"Smile Dental", 'O\'Brien "Family" Dental', "Contest Dental", "Training 2026"}


@dataclass(frozen=True)
class Server:
    """A database server holding the test's databases, each named ``prefix + NAMES[i]``."""

    kind: str
    url: str  # databases.server_url
    prefix: str

    def discover(
        self, *, check: bool = False, open_engine: OpenEngine | None = None
    ) -> dict[str, DatabaseInfo]:
        found = discover(
            self.url,
            server_id=SERVER_ID,
            genuine_server_check=check,
            timeout=10,
            only=lambda name: name.startswith(self.prefix),
            open_engine=open_engine,
        )
        return {info.name.removeprefix(self.prefix): info for info in found}


def _fill(urls: dict[str, str], prefix: str) -> None:
    """Make every database a practice database except NOT_PRACTICE, which gets a table of
    its own (the practice software's, say) that must stay the only one."""
    for name, registered in REGISTERED.items():
        init_practice_database(
            urls[prefix + name], practice_name=name, registered_server=registered
        )
    engine = create_engine(urls[prefix + NOT_PRACTICE], poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE appointments (id INTEGER PRIMARY KEY, note VARCHAR(20))"))
        conn.execute(text("INSERT INTO appointments VALUES (1, 'keep')"))
    engine.dispose()


def _prefix() -> str:
    # Hex digits only: a prefix must not spell "test", "demo", ... (the eligibility words).
    return f"pesd{uuid.uuid4().hex[:6]} "


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "mariadb", "mariadb-odbc"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("practices")
        urls = {name: f"sqlite:///{folder / name}.sqlite3" for name in NAMES}
        sqlite3.connect(folder / f"{NOT_PRACTICE}.sqlite3").close()
        _fill(urls, "")
        yield Server("sqlite", f"sqlite:///{folder}", "")
        return
    admin = POSTGRES_ADMIN_URL if request.param == "postgresql" else MARIADB_ADMIN_URL
    prefix = _prefix()
    with named_databases(admin, [prefix + name for name in NAMES]) as urls:
        _fill(urls, prefix)
        url = MARIADB_ODBC_SERVER_URL if request.param == "mariadb-odbc" else server_url(admin)
        yield Server(request.param, url, prefix)


def tables_of(info: DatabaseInfo) -> set[str]:
    engine = make_engine(info.url, pooled=False)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


# --- on every kind of server -----------------------------------------------------------


def test_every_database_is_listed_by_its_exact_name(server: Server) -> None:
    assert set(server.discover()) == set(NAMES)


def test_list_databases_names_them_too(server: Server) -> None:
    names = list_databases(server.url)
    assert {n.removeprefix(server.prefix) for n in names if n.startswith(server.prefix)} == set(
        NAMES
    )


def test_the_databases_come_sorted_case_insensitively(server: Server) -> None:
    names = list(server.discover())
    assert names == sorted(names, key=str.casefold)


def test_practice_databases_are_recognised_with_their_practice_row(server: Server) -> None:
    found = server.discover()
    for name, registered in REGISTERED.items():
        info = found[name]
        assert (info.is_practice, info.practice_name, info.registered_server, info.error) == (
            True,
            name,
            registered,
            None,
        )


def test_a_database_without_the_practice_table_is_not_a_practice_database(
    server: Server,
) -> None:
    info = server.discover()[NOT_PRACTICE]
    assert (info.is_practice, info.practice_name, info.error) == (False, None, None)
    assert info.eligibility == Eligibility(False, "no practice table")


def test_a_non_practice_database_is_never_written_to(server: Server) -> None:
    info = server.discover()[NOT_PRACTICE]
    server.discover(check=True)
    assert tables_of(info) == {"appointments"}


def test_with_the_check_off_eligibility_follows_the_name(server: Server) -> None:
    found = server.discover(check=False)
    assert {n for n, info in found.items() if info.eligibility.eligible} == ELIGIBLE_CHECK_OFF


def test_with_the_check_on_eligibility_follows_registered_server(server: Server) -> None:
    found = server.discover(check=True)
    assert {n for n, info in found.items() if info.eligibility.eligible} == ELIGIBLE_CHECK_ON


@pytest.mark.parametrize("check", [False, True])
def test_eligibility_is_the_one_rule_of_supervisor_eligibility(server: Server, check: bool) -> None:
    for info in server.discover(check=check).values():
        assert info.eligibility == eligibility(
            info.name,
            is_practice=info.is_practice,
            registered_server=info.registered_server,
            server_id=SERVER_ID,
            genuine_server_check=check,
        )


def test_each_url_opens_its_own_database(server: Server) -> None:
    for name, info in server.discover().items():
        if info.is_practice:
            engine = make_engine(info.url, pooled=False)
            try:
                row = read_practice(engine)
            finally:
                engine.dispose()
            assert row is not None
            assert row.practice_name == name


def test_only_skips_the_other_databases(server: Server) -> None:
    found = server.discover()
    only = discover(
        server.url,
        server_id=SERVER_ID,
        genuine_server_check=False,
        only=lambda name: name == server.prefix + "Smile Dental",
    )
    assert only == [found["Smile Dental"]]


def test_served_databases_read_through_their_own_engines_give_the_same_findings(
    server: Server,
) -> None:
    plain = server.discover()
    engines = {info.url: make_engine(info.url) for info in plain.values()}
    asked: list[str] = []

    def open_engine(_name: str, url: str) -> Engine | None:
        asked.append(url)
        return engines[url]

    try:
        served = server.discover(check=True, open_engine=open_engine)
        assert served == server.discover(check=True)
        assert sorted(asked) == sorted(engines)
        # Read through the served engines, which stay open: their pooled connections too.
        practice = [plain[name].url for name in REGISTERED]
        assert all(engines[url].pool.checkedin() == 1 for url in practice)
    finally:
        for engine in engines.values():
            engine.dispose()


def test_read_practice_reads_the_row_and_raises_without_the_table(server: Server) -> None:
    for name, info in server.discover().items():
        engine = make_engine(info.url)
        try:
            if info.is_practice:
                assert read_practice(engine) == PracticeRow(name, REGISTERED[name])
            else:
                with pytest.raises(DBAPIError):
                    read_practice(engine)
        finally:
            engine.dispose()


# --- SQLite folders --------------------------------------------------------------------


def folder_state(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_sqlite_non_practice_files_are_not_touched(tmp_path: Path) -> None:
    wal = sqlite3.connect(tmp_path / "wal mode.db")
    wal.execute("PRAGMA journal_mode=WAL")
    wal.execute("CREATE TABLE t (a)")
    wal.commit()
    wal.close()
    rollback = sqlite3.connect(tmp_path / "rollback mode.sqlite")
    rollback.execute("CREATE TABLE t (a)")
    rollback.commit()
    rollback.close()
    (tmp_path / "empty.sqlite3").touch()
    before = folder_state(tmp_path)
    found = discover(f"sqlite:///{tmp_path}", server_id=SERVER_ID, genuine_server_check=False)
    assert [(i.name, i.is_practice, i.error) for i in found] == [
        ("empty", False, None),
        ("rollback mode", False, None),
        ("wal mode", False, None),
    ]
    assert folder_state(tmp_path) == before  # same files, same bytes: no -wal, -shm, -journal


def test_sqlite_a_practice_file_in_use_is_read_through_its_wal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'Smile Dental.sqlite3'}"
    init_practice_database(url, practice_name="Smile Dental")
    engine = make_engine(url)  # the service holds it open: -wal and -shm exist
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE practice SET practice_name = 'Renamed'"))
        (info,) = discover(f"sqlite:///{tmp_path}", server_id=SERVER_ID, genuine_server_check=False)
    finally:
        engine.dispose()
    assert (info.is_practice, info.practice_name) == (True, "Renamed")


def test_sqlite_only_database_files_directly_in_the_folder_count(tmp_path: Path) -> None:
    init_practice_database(f"sqlite:///{tmp_path / 'Smile.DB'}", practice_name="Smile")
    (tmp_path / "notes.txt").write_text("not a database")
    (tmp_path / "folder.db").mkdir()
    (tmp_path / "folder.db" / "Inner.sqlite3").touch()
    assert list_databases(f"sqlite:///{tmp_path}") == ["Smile"]


def test_sqlite_a_file_that_is_not_sqlite_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "Smile Dental.db").write_text("this is not a database\n" * 10)
    (info,) = discover(f"sqlite:///{tmp_path}", server_id=SERVER_ID, genuine_server_check=False)
    assert info.error == "not a SQLite database file"
    assert (info.is_practice, info.eligibility.eligible) == (False, False)
    assert info.eligibility.reason == "cannot be read: not a SQLite database file"


def test_sqlite_two_files_with_one_name_are_reported(tmp_path: Path) -> None:
    for suffix in (".db", ".sqlite3"):
        init_practice_database(f"sqlite:///{tmp_path}/Smile{suffix}", practice_name="Smile")
    first, second = discover(
        f"sqlite:///{tmp_path}", server_id=SERVER_ID, genuine_server_check=False
    )
    assert (first.name, first.error, first.is_practice) == ("Smile", None, True)
    assert second.name == "Smile"
    assert second.error is not None
    assert "Smile.db has the same name" in second.error


def test_sqlite_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError) as raised:
        list_databases(f"sqlite:///{tmp_path / 'nowhere'}")
    assert str(raised.value) == (
        f"the SQLite folder {str(tmp_path / 'nowhere')!r} does not exist (see databases.server_url)"
    )


# --- servers: errors, passwords, permissions -------------------------------------------

UNREACHABLE = [
    "postgresql+psycopg://pes:secret123@127.0.0.1:1",
    "mysql+pymysql://pes:secret123@127.0.0.1:1",
    f"mysql+pyodbc://pes:secret123@127.0.0.1:1/?driver={MARIADB_ODBC_DRIVER}",
]


@pytest.mark.parametrize("url", UNREACHABLE)
def test_an_unreachable_server_is_one_line_without_the_password(url: str) -> None:
    with pytest.raises(DiscoveryError) as raised:
        discover(url, server_id=SERVER_ID, genuine_server_check=False, timeout=5)
    message = str(raised.value)
    assert "\n" not in message
    assert "secret123" not in message
    assert message.startswith(f"cannot list the databases on {url.split('://')[0]}://pes:***@")


def test_a_database_that_refuses_the_login_is_reported_not_raised() -> None:
    prefix, role = _prefix(), f"pesd_role_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    quote = admin.dialect.identifier_preparer.quote_identifier
    with admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {quote(role)} LOGIN"))
    try:
        names = [prefix + "Smile Dental", prefix + "Locked Dental"]
        with named_databases(POSTGRES_ADMIN_URL, names) as urls:
            init_practice_database(urls[names[0]], practice_name="Smile Dental")
            smile_db = create_engine(urls[names[0]], poolclass=NullPool)
            with smile_db.begin() as conn:  # the service's login may read the practice row
                conn.execute(text(f"GRANT SELECT ON practice TO {quote(role)}"))
            smile_db.dispose()
            with admin.connect() as conn:
                conn.execute(text(f"REVOKE CONNECT ON DATABASE {quote(names[1])} FROM PUBLIC"))
            as_role = make_url(server_url(POSTGRES_ADMIN_URL)).set(username=role)
            found = discover(
                as_role.render_as_string(hide_password=False),
                server_id=SERVER_ID,
                genuine_server_check=False,
                only=lambda name: name.startswith(prefix),
            )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP ROLE IF EXISTS {quote(role)}"))
        admin.dispose()
    locked, smile = found
    assert (smile.is_practice, smile.eligibility.eligible) == (True, True)
    assert locked.error is not None
    assert "permission denied" in locked.error
    assert "\n" not in locked.error
    assert (locked.is_practice, locked.eligibility.eligible) == (False, False)


def test_the_url_is_never_in_the_repr_and_display_url_masks_it() -> None:
    info = DatabaseInfo(
        name="Smile Dental",
        url="postgresql+psycopg://svc:secret123@db/Smile%20Dental",
        is_practice=True,
        practice_name="Smile Dental",
        registered_server=None,
        eligibility=Eligibility(True, "ok"),
    )
    assert "secret123" not in repr(info)
    assert info.display_url == "postgresql+psycopg://svc:***@db/Smile%20Dental"


def test_error_line_withholds_a_driver_message_that_holds_the_password() -> None:
    exc = OperationalError("SELECT 1", {}, RuntimeError("login secret123 refused\nmore"))
    assert error_line(exc, "postgresql://u:secret123@h") == f"RuntimeError {redact.HIDDEN}"


# --- MariaDB through an ODBC data source name ------------------------------------------


def test_mariadb_through_an_odbc_dsn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dsn = f"pesd_dsn_{uuid.uuid4().hex[:6]}"
    ini = tmp_path / "odbc.ini"
    ini.write_text(f"[{dsn}]\nDriver = {MARIADB_ODBC_DRIVER}\nServer = 127.0.0.1\nPort = 3306\n")
    monkeypatch.setenv("ODBCINI", str(ini))  # unixODBC's user data sources file
    prefix = _prefix()
    names = [prefix + "Smile Dental", prefix + NOT_PRACTICE]
    with named_databases(MARIADB_ADMIN_URL, names) as urls:
        init_practice_database(urls[names[0]], practice_name="Smile Dental")
        found = discover(
            f"mysql+pyodbc://root@{dsn}",
            server_id=SERVER_ID,
            genuine_server_check=False,
            only=lambda name: name.startswith(prefix),
        )
        assert [(i.name, i.is_practice, i.error) for i in found] == [
            (names[1], False, None),
            (names[0], True, None),
        ]
        assert tables_of(found[0]) == set()


# --- statements and URLs, without a server ---------------------------------------------


def test_the_sql_server_listing_statement() -> None:
    compiled = list_statement("mssql").compile(dialect=mssql.dialect())
    assert " ".join(str(compiled).split()) == (
        "SELECT sys.databases.name FROM sys.databases "
        "WHERE sys.databases.state_desc = :state_desc_1 "
        "AND (sys.databases.name NOT IN (__[POSTCOMPILE_name_1]))"
    )
    assert compiled.params == {
        "state_desc_1": "ONLINE",
        "name_1": ["master", "tempdb", "model", "msdb"],
    }


@pytest.mark.parametrize(
    ("backend", "dialect"),
    [("postgresql", postgresql.dialect()), ("mysql", mysql.dialect()), ("mssql", mssql.dialect())],
)
def test_listing_statements_bind_every_name(backend: str, dialect: object) -> None:
    sql = str(list_statement(backend).compile(dialect=dialect))  # type: ignore[arg-type]
    for system_name in ("postgres", "information_schema", "mysql", "master"):
        assert f"'{system_name}'" not in sql


def test_the_postgresql_listing_skips_templates_and_closed_databases() -> None:
    sql = " ".join(str(list_statement("postgresql").compile(dialect=postgresql.dialect())).split())
    assert "FROM pg_catalog.pg_database" in sql
    assert "NOT pg_catalog.pg_database.datistemplate" in sql
    assert "AND pg_catalog.pg_database.datallowconn" in sql


def test_an_unknown_kind_of_server_is_one_line() -> None:
    with pytest.raises(DiscoveryError, match="cannot list databases on a 'oracle' server"):
        list_statement("oracle")


@pytest.mark.parametrize("name", NAMES)
def test_database_url_sets_the_database_name_exactly(name: str) -> None:
    url = database_url("postgresql+psycopg://svc:pw@db:5432", name)
    assert make_url(url).database == name
    assert make_url(url).password == "pw"


def test_database_url_keeps_an_odbc_dsn_a_dsn() -> None:
    url = make_url(database_url("mssql+pyodbc://svc:pw@practice_dsn", "Smile Dental"))
    assert (url.host, url.database, url.query["dsn"]) == (None, "Smile Dental", "practice_dsn")
    args = url.get_dialect()().create_connect_args(url)[0][0]
    assert args == "dsn=practice_dsn;UID=svc;PWD=pw;database=Smile Dental"


def test_database_url_appends_to_an_odbc_connection_string() -> None:
    url = database_url(
        "mssql+pyodbc://?odbc_connect=DRIVER%3D%7BODBC+Driver+18%7D%3BSERVER%3Ddb%3B",
        "semi;colon [x]",
    )
    assert make_url(url).query["odbc_connect"] == (
        "DRIVER={ODBC Driver 18};SERVER=db;DATABASE={semi;colon [x]}"
    )


def test_odd_names_reach_pyodbc_quoted() -> None:
    url = make_url(database_url(MARIADB_ODBC_SERVER_URL, NOT_PRACTICE))
    args = url.get_dialect()().create_connect_args(url)[0][0]
    assert "Database={semi;colon [x]}" in args
