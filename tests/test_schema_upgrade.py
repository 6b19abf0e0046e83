"""A practice database made by an older version gets the columns added since.

The old database is made by running ``db init``'s tables, then dropping the newest
service columns of ``email_messages`` (SQLite and the servers all drop columns now),
which is what a database made before they existed looks like.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, insert, inspect, make_url, select

from actors import schema_upgrade
from actors.database_selftest import DatabaseSelfTest
from actors.practice_schema import email_messages, init_practice_database
from events.clock import FakeClock
from tests.servers import fresh_database

BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]

NEWER = ("recipient_status", "wire_at")
"""Service columns of ``email_messages`` a database made before them lacks."""


@pytest.fixture(params=BACKENDS)
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        init_practice_database(url, practice_name="Old Practice")
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(insert(email_messages).values(folder="outbox", status="queued"))
            for name in NEWER:
                conn.exec_driver_sql(f"ALTER TABLE email_messages DROP COLUMN {name}")
        engine.dispose()
        yield url


def columns(engine: Engine) -> set[str]:
    return {str(c["name"]) for c in inspect(engine).get_columns("email_messages")}


def test_missing_columns_names_what_an_old_database_lacks(old_database: str) -> None:
    engine = create_engine(old_database)
    try:
        missing = {f"{t.name}.{c.name}" for t, c in schema_upgrade.missing_columns(engine)}
    finally:
        engine.dispose()
    assert missing == {f"email_messages.{name}" for name in NEWER}


def test_db_init_again_adds_the_columns_and_keeps_the_rows(old_database: str) -> None:
    init_practice_database(old_database, practice_name="Old Practice")
    engine = create_engine(old_database)
    try:
        assert set(NEWER) <= columns(engine)
        with engine.connect() as conn:
            rows = conn.execute(select(email_messages.c.folder, email_messages.c.wire_at)).all()
        assert [tuple(r) for r in rows] == [("outbox", None)]
        assert schema_upgrade.missing_columns(engine) == []
    finally:
        engine.dispose()


def test_the_mailboxs_first_claim_upgrades_the_database(old_database: str) -> None:
    clock = FakeClock(datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
    engine = create_engine(old_database)
    try:
        selftest = DatabaseSelfTest("Old Practice", old_database, 1, "SRV", clock, lambda: engine)
        assert selftest.run().diagnostics == ()
        assert set(NEWER) <= columns(engine)
    finally:
        engine.dispose()


def test_an_up_to_date_database_is_left_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.sqlite3'}"
    init_practice_database(url, practice_name="New Practice")
    engine = create_engine(url)
    try:
        assert schema_upgrade.add_missing_columns(engine) == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_user_who_may_not_alter_the_tables_is_told_what_to_run(tmp_path: Path) -> None:
    """The service's database user may read and write but not change the tables (not
    their owner): the self-test names the missing columns, the server's refusal and the
    command to run, instead of "does not answer"."""
    with fresh_database("postgresql", tmp_path) as url:
        init_practice_database(url, practice_name="Old Practice")
        role = f"clerk_{uuid.uuid4().hex[:8]}"
        owner = create_engine(url)
        with owner.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE email_messages DROP COLUMN wire_at")
            conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
            conn.exec_driver_sql(
                f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}"
            )
            conn.exec_driver_sql(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
        clerk_url = make_url(url).set(username=role).render_as_string(hide_password=False)
        clerk = create_engine(clerk_url)
        clock = FakeClock(datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
        try:
            result = DatabaseSelfTest("old", clerk_url, 1, "SRV", clock, lambda: clerk).run()
        finally:
            clerk.dispose()
            with owner.begin() as conn:
                conn.exec_driver_sql(f"DROP OWNED BY {role}")
                conn.exec_driver_sql(f"DROP ROLE {role}")
            owner.dispose()
    [diagnostic] = result.diagnostics
    assert "email_messages.wire_at" in diagnostic.message
    assert "owner" in diagnostic.message  # the server's words: "must be owner of table"
    assert "email-service db init --db old" in diagnostic.message
