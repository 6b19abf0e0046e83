"""The practice tables (CONTRACT.md, "Tables in every practice database"), ``db init``'s
function, and the practice database adapter with its incarnation fence, on SQLite, real
PostgreSQL and real MariaDB."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, insert, inspect, select, text, update
from sqlalchemy.dialects import mssql
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.schema import CreateIndex, CreateTable

from actors.practice_db import (
    PracticeDbError,
    PracticeRow,
    StaleIncarnationError,
    check_incarnation,
    claim_incarnation,
    has_practice_table,
    make_engine,
    read_practice,
)
from actors.practice_schema import (
    CONTRACT_TABLES,
    METADATA,
    SERVICE_TABLES,
    email_messages,
    email_service_mailbox,
    email_settings,
    init_practice_database,
    practice,
    utcnow,
)
from tests.servers import fresh_mariadb_database, fresh_postgres_database


def words(text: str) -> set[str]:
    return set(text.split())


CONTRACT_COLUMNS: dict[str, set[str]] = {
    "practice": {"id", "practice_name", "registered_server"},
    "email_settings": words(
        "id sending_enabled send_window max_per_minute from_address from_name smtp_host "
        "smtp_port smtp_security smtp_username smtp_password imap_enabled imap_host imap_port "
        "imap_security imap_username imap_password imap_folder imap_after_import sms_enabled "
        "sms_gateway"
    ),
    "email_messages": words(
        "id folder channel status message_id from_addr to_addrs cc_addrs subject body_text "
        "body_html raw patient_id actioned_at actioned_by attempts next_attempt_at last_error "
        "created_at sent_at received_at imap_uidvalidity imap_uid deleted_from"
    ),
    "patients": {"id", "email", "mobile_phone"},
    "email_service_checkins": words(
        "id checked_in_at next_checkin_due_at ok summary server_name service_version"
    ),
    "email_service_diagnostics": words("id checkin_id logged_at level component message"),
    "email_service_commands": words("id command requested_at requested_by handled_at outcome"),
}

NOW = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'Smile Dental.sqlite3'}"
    elif request.param == "postgresql":
        with fresh_postgres_database("pes_schema") as url:
            yield url
    else:
        with fresh_mariadb_database("pes_schema") as url:
            yield url


@pytest.fixture
def practice_url(empty_url: str) -> str:
    init_practice_database(empty_url, practice_name="Smile Dental", registered_server="SRV1")
    return empty_url


@pytest.fixture
def engine(practice_url: str) -> Iterator[Engine]:
    engine = make_engine(practice_url)
    yield engine
    engine.dispose()


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


# --- the tables, as declared -----------------------------------------------------------


def test_the_contract_tables_have_every_contract_column() -> None:
    assert set(CONTRACT_TABLES) == set(CONTRACT_COLUMNS)
    for name, columns in CONTRACT_COLUMNS.items():
        assert columns <= set(METADATA.tables[name].columns.keys()), name


def test_the_only_added_tables_are_the_service_owned_fence_and_inbox_mark() -> None:
    assert set(METADATA.tables) - set(CONTRACT_TABLES) == set(SERVICE_TABLES)
    assert SERVICE_TABLES == ("email_service_mailbox", "email_service_inbox")
    assert set(email_service_mailbox.columns.keys()) == {
        "id",
        "incarnation",
        "server_name",
        "started_at",
    }


def test_sql_server_ddl_allows_many_null_message_ids_and_uses_max_types() -> None:
    dialect = mssql.dialect()
    ddl = str(CreateTable(email_messages).compile(dialect=dialect))
    indexes = {
        str(ix.name): str(CreateIndex(ix).compile(dialect=dialect)) for ix in email_messages.indexes
    }
    assert "NVARCHAR(max)" in ddl
    assert "VARBINARY(max)" in ddl
    assert "DATETIME2(6)" in ddl
    assert "DEFAULT SYSUTCDATETIME()" in ddl
    assert indexes["uq_email_messages_message_id"].endswith("WHERE message_id IS NOT NULL")
    assert indexes["uq_email_messages_imap_uidvalidity_imap_uid"].endswith(
        "WHERE imap_uid IS NOT NULL"
    )


# --- init_practice_database, on every backend -----------------------------------------


def test_init_creates_every_table(practice_url: str) -> None:
    assert set(METADATA.tables) <= table_names(practice_url)


def test_init_writes_the_practice_row(engine: Engine) -> None:
    assert read_practice(engine) == PracticeRow("Smile Dental", "SRV1")


DEFAULT_SETTINGS = {
    "id": 1,
    "sending_enabled": True,
    "send_window": "",
    "max_per_minute": 30,
    "smtp_port": 587,
    "smtp_security": "starttls",
    "imap_enabled": False,
    "imap_port": 993,
    "imap_security": "tls",
    "imap_folder": "INBOX",
    "imap_after_import": "keep",
    "sms_enabled": False,
    "smtp_host": None,
    "smtp_password": None,
}


def test_init_writes_the_default_email_settings(engine: Engine) -> None:
    with engine.connect() as conn:
        row = conn.execute(select(email_settings)).one()._mapping
    assert {key: row[key] for key in DEFAULT_SETTINGS} == DEFAULT_SETTINGS


def test_init_twice_keeps_tables_and_rows(practice_url: str, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(update(email_settings).values(max_per_minute=5))
        conn.execute(insert(email_messages).values(subject="kept"))
    init_practice_database(practice_url, practice_name="Other Name", registered_server=None)
    assert read_practice(engine) == PracticeRow("Smile Dental", "SRV1")
    with engine.connect() as conn:
        assert conn.scalar(select(email_settings.c.max_per_minute)) == 5
        assert conn.scalar(select(email_messages.c.subject)) == "kept"


def test_init_leaves_a_patients_view_alone(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE pats (id INTEGER, mail TEXT, phone TEXT)")
        conn.execute(
            "CREATE VIEW patients AS SELECT id, mail AS email, phone AS mobile_phone FROM pats"
        )
    init_practice_database(f"sqlite:///{path}", practice_name="Smile Dental")
    with sqlite3.connect(path) as conn:
        kinds = conn.execute(
            "SELECT type FROM sqlite_master WHERE tbl_name = 'patients'"
        ).fetchall()
    assert kinds == [("view",)]


def test_a_queued_row_gets_the_contract_defaults_and_a_utc_created_at(engine: Engine) -> None:
    before = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=5)
    with engine.begin() as conn:
        conn.execute(insert(email_messages).values(to_addrs="a@example.org", subject="Hi"))
        row = conn.execute(select(email_messages)).one()
    after = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=5)
    assert (row.folder, row.channel, row.status, row.attempts) == ("outbox", "email", "queued", 0)
    # Server time in UTC, whatever the server's time zone: the contract says times are UTC.
    assert before <= row.created_at <= after
    assert row.created_at.tzinfo is None


def test_utcnow_is_the_servers_clock_in_utc(engine: Engine) -> None:
    with engine.connect() as conn:
        server_now = conn.scalar(select(utcnow()))
    assert abs(server_now - datetime.now(UTC).replace(tzinfo=None)) < timedelta(seconds=30)


def test_many_rows_may_have_no_message_id(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(email_messages), [{"subject": "a"}, {"subject": "b"}])
        assert conn.scalar(text("SELECT count(*) FROM email_messages")) == 2


def test_message_id_is_unique(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(email_messages).values(message_id="<a@b>"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(email_messages).values(message_id="<a@b>"))


def test_imap_uid_is_unique_within_its_uidvalidity(engine: Engine) -> None:
    row = {"folder": "inbox", "status": "received", "imap_uidvalidity": 7, "imap_uid": 4294967295}
    with engine.begin() as conn:
        conn.execute(insert(email_messages).values(**row))
        conn.execute(insert(email_messages).values(**(row | {"imap_uidvalidity": 8})))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(email_messages).values(**row))


def test_the_outbox_query_has_an_index(practice_url: str) -> None:
    engine = create_engine(practice_url)
    try:
        indexes = inspect(engine).get_indexes("email_messages")
    finally:
        engine.dispose()
    columns = {ix["name"]: ix["column_names"] for ix in indexes}
    assert columns["ix_email_messages_outbox"] == ["folder", "status", "next_attempt_at"]


def test_mail_bodies_larger_than_64_kib_fit(engine: Engine) -> None:
    body, raw = "é" * 70_000, bytes(range(256)) * 400
    with engine.begin() as conn:
        conn.execute(insert(email_messages).values(body_html=body, raw=raw))
        row = conn.execute(select(email_messages.c.body_html, email_messages.c.raw)).one()
    assert (row.body_html, row.raw) == (body, raw)


def test_a_non_ascii_practice_name_round_trips(empty_url: str) -> None:
    init_practice_database(empty_url, practice_name="Zahnarztpraxis Müller")
    engine = make_engine(empty_url)
    try:
        assert read_practice(engine) == PracticeRow("Zahnarztpraxis Müller", None)
    finally:
        engine.dispose()


# --- the adapter -----------------------------------------------------------------------


def test_a_sqlite_practice_file_made_by_db_init_runs_in_wal_mode(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.sqlite3'}"
    init_practice_database(url, practice_name="Smile")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    finally:
        engine.dispose()


def test_has_practice_table_is_false_for_an_empty_database_and_creates_nothing(
    empty_url: str,
) -> None:
    engine = make_engine(empty_url)
    try:
        assert has_practice_table(engine) is False
    finally:
        engine.dispose()
    assert table_names(empty_url) == set()


def test_has_practice_table_is_true_after_init(engine: Engine) -> None:
    assert has_practice_table(engine) is True


def test_read_practice_is_none_without_the_row(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(practice.delete())
    assert read_practice(engine) is None


# --- the incarnation fence -------------------------------------------------------------


def stored(engine: Engine) -> tuple[int, str]:
    with engine.connect() as conn:
        row = conn.execute(
            select(email_service_mailbox.c.incarnation, email_service_mailbox.c.server_name)
        ).one()
    return row.incarnation, row.server_name


def test_the_first_claim_records_the_incarnation(engine: Engine) -> None:
    claim_incarnation(engine, 1, "SRV1", NOW)
    assert stored(engine) == (1, "SRV1")


def test_a_higher_claim_takes_over(engine: Engine) -> None:
    claim_incarnation(engine, 1, "SRV1", NOW)
    claim_incarnation(engine, 2, "SRV2", NOW + timedelta(seconds=1))
    assert stored(engine) == (2, "SRV2")


def test_claiming_the_same_incarnation_again_is_allowed(engine: Engine) -> None:
    claim_incarnation(engine, 3, "SRV1", NOW)
    claim_incarnation(engine, 3, "SRV1", NOW)
    assert stored(engine) == (3, "SRV1")


def test_a_new_process_of_the_same_service_takes_its_predecessors_number(engine: Engine) -> None:
    claim_incarnation(engine, 3, "SRV1 (host-a pid 10)", NOW)
    claim_incarnation(engine, 3, "SRV1 (host-a pid 11)", NOW)
    assert stored(engine) == (3, "SRV1 (host-a pid 11)")


def test_another_service_never_holds_the_same_number(engine: Engine) -> None:
    # Two services with logs of their own count incarnations independently: the second
    # one reaching the number the first holds must not share it (both would send).
    claim_incarnation(engine, 3, "SRV1 (host-a pid 10)", NOW)
    with pytest.raises(StaleIncarnationError):
        claim_incarnation(engine, 3, "SRV1 (host-b pid 20)", NOW)
    assert stored(engine) == (3, "SRV1 (host-a pid 10)")
    claim_incarnation(engine, 4, "SRV1 (host-b pid 20)", NOW)  # its next one fences A out
    assert stored(engine) == (4, "SRV1 (host-b pid 20)")


def test_a_lower_claim_is_refused(engine: Engine) -> None:
    claim_incarnation(engine, 5, "SRV1", NOW)
    with pytest.raises(StaleIncarnationError) as raised:
        claim_incarnation(engine, 4, "SRV1", NOW)
    assert (raised.value.incarnation, raised.value.stored) == (4, 5)
    assert stored(engine) == (5, "SRV1")


def test_a_claim_creates_the_fence_table_in_a_practice_database_without_it(
    engine: Engine,
) -> None:
    email_service_mailbox.drop(engine)
    claim_incarnation(engine, 1, "SRV1", NOW)
    assert stored(engine) == (1, "SRV1")


def test_a_claim_on_a_database_without_practice_creates_nothing(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        with pytest.raises(PracticeDbError):
            claim_incarnation(engine, 1, "SRV1", NOW)
    finally:
        engine.dispose()
    assert table_names(empty_url) == set()


def test_check_passes_for_the_incarnation_that_holds_the_fence(engine: Engine) -> None:
    claim_incarnation(engine, 2, "SRV1", NOW)
    with engine.begin() as conn:
        check_incarnation(conn, 2)


def test_check_refuses_an_older_incarnation(engine: Engine) -> None:
    claim_incarnation(engine, 2, "SRV1", NOW)
    with pytest.raises(StaleIncarnationError), engine.begin() as conn:
        check_incarnation(conn, 1)


def test_check_refuses_when_nobody_has_claimed(engine: Engine) -> None:
    with pytest.raises(StaleIncarnationError) as raised, engine.begin() as conn:
        check_incarnation(conn, 1)
    assert raised.value.stored is None


def test_concurrent_first_claims_leave_the_highest(engine: Engine) -> None:
    errors: list[BaseException] = []

    def claim(n: int) -> None:
        try:
            claim_incarnation(engine, n, f"SRV{n}", NOW)
        except StaleIncarnationError:
            pass  # a higher one won first: the right outcome for the lower one
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert stored(engine) == (8, "SRV8")


def test_on_postgresql_a_claim_waits_for_a_checked_write_transaction() -> None:
    with fresh_postgres_database("pes_fence") as url:
        init_practice_database(url, practice_name="Smile Dental")
        engine = make_engine(url)
        # A claim that may wait at most 200 ms for a row lock, to see that it has to wait.
        impatient = create_engine(url, connect_args={"options": "-c lock_timeout=200"})
        try:
            claim_incarnation(engine, 1, "SRV1", NOW)
            with engine.begin() as conn:
                check_incarnation(conn, 1)
                conn.execute(insert(email_messages).values(subject="written by 1"))
                with pytest.raises(OperationalError, match="lock"):
                    claim_incarnation(impatient, 2, "SRV1", NOW)
            claim_incarnation(impatient, 2, "SRV1", NOW)
            with pytest.raises(StaleIncarnationError), engine.begin() as conn:
                check_incarnation(conn, 1)
        finally:
            impatient.dispose()
            engine.dispose()


def test_on_sqlite_a_write_after_a_newer_claim_fails(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.sqlite3'}"
    init_practice_database(url, practice_name="Smile Dental")
    old, new = make_engine(url), make_engine(url)
    try:
        claim_incarnation(old, 1, "SRV1", NOW)
        with old.begin() as conn:
            check_incarnation(conn, 1)  # passes: the snapshot still says 1
            claim_incarnation(new, 2, "SRV1", NOW)  # commits meanwhile
            with pytest.raises(OperationalError, match="locked"):
                conn.execute(insert(email_messages).values(subject="stale"))
        with new.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM email_messages")) == 0
    finally:
        old.dispose()
        new.dispose()
