"""The event log's ``seq`` with writers at once: four processes, one log.

Each process opens its own ``SqlEventStore`` on the same database (its own engines and
writer thread, as two service processes would, or the service and ``email-service
events`` upkeep) and appends at the same moment as the other. On every backend the store
accepts and that runs here, ``seq`` must come out 1, 2, 3, … without a gap or a repeat,
every append must have landed, and each stream's versions must be gap-free too.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.loader import ConfigError, load_settings
from events.errors import EventLogError
from events.sql_store import SqlEventStore, UnsupportedStoreError, check_backend
from events.store import ANY, read_all
from events.types import ServiceStopping
from tests.servers import fresh_mariadb_database, fresh_postgres_database

WRITERS = 4  # two did not collide often enough on MariaDB without the lock; four did
APPENDS = 150  # per writer; 1 to 3 events each


def _events(writer: int, i: int) -> list[ServiceStopping]:
    return [ServiceStopping(f"w{writer}-{i}-{j}") for j in range(1 + i % 3)]


def _write(url: str, writer: int, start: Any, done: Any) -> None:
    """One writer process: wait for the start, then append as fast as it can."""
    store = SqlEventStore(url, create=False)
    try:
        start.wait(60)
        pending = []
        for i in range(APPENDS):
            stream = "shared" if i % 2 else f"db:w{writer}-{i % 4}"
            pending.append(store.append_async(stream, ANY, _events(writer, i)))
            if i % 10 == 9:  # some appends wait for their commit, some queue up
                for p in pending:
                    p.result()
                pending = []
        for p in pending:
            p.result()
        done.put((writer, "ok"))
    except Exception as exc:  # reported to the test, which fails on it
        done.put((writer, f"{type(exc).__name__}: {exc}"))
    finally:
        store.close()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgresql":
        with fresh_postgres_database() as url:
            yield url
    elif request.param == "mariadb":
        with fresh_mariadb_database() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'events.sqlite3'}"


def test_two_processes_appending_at_once_leave_seq_gap_free(log_url: str) -> None:
    SqlEventStore(log_url).close()  # the tables, made once before the writers start
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    done = ctx.Queue()
    writers = [ctx.Process(target=_write, args=(log_url, w, start, done)) for w in range(WRITERS)]
    for p in writers:
        p.start()
    start.set()
    outcomes = dict(done.get(timeout=300) for _ in writers)
    for p in writers:
        p.join(60)
    assert outcomes == dict.fromkeys(range(WRITERS), "ok")

    store = SqlEventStore(log_url, create=False)
    try:
        records = list(read_all(store))
        counts = store.event_counts()
    finally:
        store.close()
    expected = {e.reason for w in range(WRITERS) for i in range(APPENDS) for e in _events(w, i)}
    assert [r.seq for r in records] == list(range(1, len(expected) + 1))
    assert sorted(r.event.reason for r in records) == sorted(expected)
    by_stream: dict[str, list[int]] = {}
    for r in records:
        by_stream.setdefault(r.stream, []).append(r.version)
    assert all(v == list(range(1, len(v) + 1)) for v in by_stream.values())
    assert sum(counts.values()) == len(expected)


def test_a_backend_that_cannot_keep_writers_apart_is_refused_by_name() -> None:
    with pytest.raises(UnsupportedStoreError) as refused:
        check_backend("oracle+oracledb://app@db-host/events")
    message = str(refused.value)
    assert "oracle" in message
    assert "\n" not in message
    assert isinstance(refused.value, EventLogError)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///events.sqlite3",
        "postgresql+psycopg://u@h/events",
        "mysql+pymysql://u@h/events",
        "mariadb+pymysql://u@h/events",
        "mssql+pyodbc://u:p@events_dsn",
    ],
)
def test_the_supported_backends_are_accepted(url: str) -> None:
    check_backend(url)


def test_the_configuration_refuses_such_a_log_before_the_service_starts() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={}, overrides={"service.event_store": "oracle+oracledb://a@h/ev"})
    assert refused.value.key == "service.event_store"
    assert "cannot be kept on oracle" in str(refused.value)
    assert "\n" not in str(refused.value)
