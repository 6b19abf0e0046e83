"""``events archive | prune``, ``replay --from-archive``, and reads that use an index."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text

from events.clock import FakeClock
from events.snapshot import read_memory, save_memory
from events.sql_store import SqlEventStore
from events.store import ANY
from events.types import (
    DatabaseDiscovered,
    Diagnostic,
    MailboxCrashed,
    MailboxStarted,
    RestartScheduled,
    SelfTestFailed,
    SelfTestPassed,
    ServiceStarted,
)
from supervisor import exit_codes
from supervisor.cli import main

DAY = 86_400.0


@pytest.fixture
def year(tmp_path: Path) -> tuple[Path, Path, FakeClock]:
    """A config and its SQLite log: ten days of two databases, a crash on day 3."""
    db_file = tmp_path / "events.sqlite3"
    config = tmp_path / "service.toml"
    config.write_text(f'[service]\nevent_store = "sqlite:///{db_file}"\n')
    clock = FakeClock()
    store = SqlEventStore(f"sqlite:///{db_file}", clock=clock)
    store.append("service", ANY, [ServiceStarted("SRV1", "0.1.0", 7)])
    for db in ("a", "b"):
        store.append(f"db:{db}", ANY, [DatabaseDiscovered(db, "eligible"), MailboxStarted(1)])
    for day in range(10):
        for _ in range(20):
            clock.advance(DAY / 20)
            store.append("db:a", ANY, [SelfTestPassed(1 if day < 3 else 2, ("database",))])
            store.append("db:b", ANY, [SelfTestPassed(1, ("database",))])
        if day == 2:
            fault = Diagnostic("smtp", "error", "refused")
            store.append("db:a", ANY, [SelfTestFailed(1, (fault,)), MailboxCrashed(1, "boom", "")])
            store.append("db:a", ANY, [RestartScheduled(0.0, "crash", 1), MailboxStarted(2)])
    save_memory(store, read_memory(store))
    store.close()
    return config, db_file, clock


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def replay_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = run(capsys, *argv, "--json", "--timeline", "1000")
    assert code == exit_codes.OK, err
    result: dict[str, Any] = json.loads(out)
    return result


def test_archive_then_replay_from_it_gives_the_same_timeline(
    capsys: pytest.CaptureFixture[str], year: tuple[Path, Path, FakeClock], tmp_path: Path
) -> None:
    config, _, clock = year
    until = clock.now() - timedelta(days=5)
    before = until + timedelta(microseconds=1)
    live = replay_json(
        capsys, "--config", str(config), "events", "replay", "--until", until.isoformat()
    )
    archive = tmp_path / "old.msgpack"
    code, out, _ = run(
        capsys, "--config", str(config), "events", "archive", "--before", before.isoformat(),
        "--to", str(archive),
    )  # fmt: skip
    assert (code, out.startswith(f"Wrote {live['events']:,} events")) == (exit_codes.OK, True)
    code, _, _ = run(
        capsys, "--config", str(config), "events", "prune", "--before", before.isoformat()
    )
    assert code == exit_codes.OK
    back = replay_json(
        capsys, "--config", str(config), "events", "replay", "--from-archive", str(archive)
    )
    assert (back["timeline"], back["databases"], back["events"]) == (
        live["timeline"],
        live["databases"],
        live["events"],
    )


def test_prune_deletes_old_passes_and_records_it(
    capsys: pytest.CaptureFixture[str], year: tuple[Path, Path, FakeClock]
) -> None:
    config, _, _ = year
    stats = json.loads(run(capsys, "--config", str(config), "events", "stats", "--json")[1])
    config.write_text(
        config.read_text()
        + "[retention]\nsteady_days = 0.001\nselftest_failure_days = 36500\nkeep_days = 36500\n"
    )
    code, out, _ = run(capsys, "--config", str(config), "events", "prune", "--json")
    after = json.loads(run(capsys, "--config", str(config), "events", "stats", "--json")[1])
    # Every pass but each stream's newest goes (they are days old by the real clock too).
    assert (code, json.loads(out)["deleted"]) == (
        exit_codes.OK,
        stats["by_type"]["SelfTestPassed"] - 2,
    )
    assert after["by_type"]["SelfTestPassed"] == 2
    assert after["by_type"]["LogPruned"] == 1
    assert after["by_type"]["MailboxCrashed"] == 1


def test_stats_come_from_the_stored_counts(
    capsys: pytest.CaptureFixture[str], year: tuple[Path, Path, FakeClock]
) -> None:
    config, db_file, _ = year
    engine = create_engine(f"sqlite:///{db_file}")
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT type, COUNT(*) FROM events GROUP BY type")).all()
    engine.dispose()
    stats = json.loads(run(capsys, "--config", str(config), "events", "stats", "--json")[1])
    assert stats["by_type"] == dict(rows)


# --- the statements' plans ----------------------------------------------------------------


def _statements(db_file: Path, method: str, *args: Any, **kwargs: Any) -> list[str]:
    """The SQL (values bound in) that a store method runs on the log, as SQLite saw it."""
    store = SqlEventStore(f"sqlite:///{db_file}", create=False)
    seen: list[str] = []

    def trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(seen.append)

    event.listen(store._read_engine, "connect", trace)
    try:
        result = getattr(store, method)(*args, **kwargs)
        if not isinstance(result, list | dict | int):
            list(result)
    finally:
        store.close()
    return [s for s in seen if s.lstrip().upper().startswith("SELECT")]


def _plans(db_file: Path, statements: list[str]) -> list[str]:
    conn = sqlite3.connect(db_file)
    try:
        return [
            " | ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql))
            for sql in statements
        ]
    finally:
        conn.close()


BY_STREAM = "USING INDEX sqlite_autoindex_events_1 (stream=?)"
BY_SEQ_DOWN = "USING INTEGER PRIMARY KEY (rowid<?)"
BY_SEQ_UP = "USING INTEGER PRIMARY KEY (rowid>?)"


@pytest.mark.parametrize(
    ("method", "args", "kwargs", "way"),
    [
        ("read_chunks", (0,), {"stream": "db:a"}, BY_STREAM),  # replay --db
        (
            "read_chunks",
            (5,),
            {"stream": "db:a", "until": datetime(2026, 1, 1, tzinfo=UTC)},
            BY_STREAM,
        ),
        (  # replay --db --until from a stream snapshot: from that version on, not the start
            "read_chunks",
            (500,),
            {"stream": "db:a", "after_version": 40},
            "USING INDEX sqlite_autoindex_events_1 (stream=? AND version>?)",
        ),
        (  # tail --db; replay --db's timeline (by version when seq 100 is the stream's)
            "read_last",
            (10,),
            {"stream": "db:a", "up_to_seq": 100},
            "USING INDEX sqlite_autoindex_events_1 (stream=?",
        ),
        ("read_last", (10,), {"up_to_seq": 100}, BY_SEQ_DOWN),  # tail, the timeline
        ("read_chunks", (100,), {"limit": 1}, BY_SEQ_UP),  # stats' first event, a peek
        ("read_chunks", (400,), {}, BY_SEQ_UP),  # start-up: what came after the memory
        ("last_seq", (), {}, "SEARCH events"),  # max(seq): the primary key's end
        ("stream_version", ("db:a",), {}, "COVERING INDEX sqlite_autoindex_events_1 (stream=?)"),
        ("streams", (), {}, "COVERING INDEX sqlite_autoindex_events_1 (stream>?)"),
        ("event_counts", (), {}, "SCAN event_counts"),  # stats: the small counts table
        ("load_checkpoint", ("memory",), {}, "event_checkpoints"),  # start-up
    ],
)
def test_log_reads_go_through_an_index(
    year: tuple[Path, Path, FakeClock],
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    way: str,
) -> None:
    _, db_file, _ = year
    plans = _plans(db_file, _statements(db_file, method, *args, **kwargs))
    # Never a scan of the events table (also not of its index, as a GROUP BY would) nor
    # a sort of what was read; each read the way it is meant to go.
    bad = [p for p in plans if "SCAN events" in p or "TEMP B-TREE" in p]
    assert (bad, way in plans[-1]) == ([], True), plans


def test_a_replays_timeline_reads_the_streams_last_events_before_its_end(
    year: tuple[Path, Path, FakeClock],
) -> None:
    """``replay --db --until T`` shows the stream's newest events up to T's position: one
    range of the (stream, version) index ending at that event, not a walk back over every
    later event of the stream (0.26 s in the middle of a 10-million-event log)."""
    _, db_file, _ = year
    conn = sqlite3.connect(db_file)
    try:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM events WHERE stream = 'db:a'")]
    finally:
        conn.close()
    middle = seqs[len(seqs) // 2]
    store = SqlEventStore(f"sqlite:///{db_file}", create=False)
    try:
        got = [r[0] for r in store.read_last(5, stream="db:a", up_to_seq=middle)]
    finally:
        store.close()
    plans = _plans(db_file, _statements(db_file, "read_last", 5, stream="db:a", up_to_seq=middle))
    assert got == [s for s in seqs if s <= middle][-5:]
    assert "(stream=? AND version<?)" in plans[-1], plans


def test_a_read_by_stream_in_seq_order_would_be_caught(year: tuple[Path, Path, FakeClock]) -> None:
    # The statement stream reads used before: SQLite either walks the whole log by seq
    # or sorts the stream's rows (which one depends on its statistics).
    _, db_file, _ = year
    [plan] = _plans(
        db_file, ["SELECT * FROM events WHERE seq > 0 AND stream = 'db:a' ORDER BY seq"]
    )
    assert BY_STREAM not in plan or "TEMP B-TREE" in plan


def test_a_log_from_before_the_counts_is_counted_once_when_opened(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    store = SqlEventStore(url)
    store.append("db:a", ANY, [MailboxStarted(1), SelfTestPassed(1, ()), SelfTestPassed(1, ())])
    store.close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE event_counts"))  # as an older version left it
    engine.dispose()
    reader = SqlEventStore(url, create=False)  # the command line: creates nothing
    counted = reader.event_counts()
    reader.close()
    store = SqlEventStore(url)  # the service: adds the table and counts the log once
    store.append("db:a", ANY, [SelfTestPassed(1, ())])
    stored = store.event_counts()
    store.close()
    expected = {("db:a", "MailboxStarted"): 1, ("db:a", "SelfTestPassed"): 2}
    assert (counted, stored) == (expected, {**expected, ("db:a", "SelfTestPassed"): 3})


@pytest.mark.parametrize(
    ("method", "args", "kwargs"),
    [
        ("read_chunks", (0,), {"stream": "db:a"}),  # replay --db
        ("read_last", (10,), {"stream": "db:a", "up_to_seq": 100}),  # tail --db
        ("read_last", (10,), {"up_to_seq": 100}),  # tail, the timeline
        ("read_chunks", (100,), {"limit": 1}),  # stats' first event, a peek
        ("read_chunks", (400,), {}),  # start-up: what came after the stored memory
        ("stream_version", ("db:a",), {}),
        ("streams", (), {}),
    ],
)
def test_on_postgresql_the_reads_can_go_through_an_index(
    postgres_url: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        for table in ("events", "event_counts", "event_checkpoints"):
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    store = SqlEventStore(postgres_url)
    for db in ("a", "b"):
        store.append(f"db:{db}", ANY, [SelfTestPassed(1, ("database",))] * 300)
    seen: list[tuple[str, Any]] = []

    def before(_c: Any, _cur: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "events" in statement:
            seen.append((statement, parameters))

    event.listen(store._read_engine, "before_cursor_execute", before)
    try:
        result = getattr(store, method)(*args, **kwargs)
        if not isinstance(result, list | dict | int):
            list(result)
    finally:
        event.remove(store._read_engine, "before_cursor_execute", before)
        store.close()
    plans = []
    with engine.connect() as conn:
        # A table this small is read whole whatever its indexes; with sequential scans
        # off, a "Seq Scan" left in the plan means no index can serve the statement.
        conn.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in seen:
            rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters).all()
            plans.append(" | ".join(r[0] for r in rows))
    engine.dispose()
    assert (seen != [], [p for p in plans if "Seq Scan on events" in p]) == (True, []), plans


@pytest.mark.parametrize("scope", [[], ["--db", "a"]])
def test_replay_from_the_stored_state_says_what_a_full_replay_says(
    capsys: pytest.CaptureFixture[str], year: tuple[Path, Path, FakeClock], scope: list[str]
) -> None:
    config, db_file, _ = year
    store = SqlEventStore(f"sqlite:///{db_file}")
    store.append("db:a", ANY, [SelfTestPassed(2, ("database",))] * 3)  # after the stored state
    store.close()
    argv = ["--config", str(config), "events", "replay", *scope]
    fast, full = replay_json(capsys, *argv), replay_json(capsys, *argv, "--full")
    assert fast == full


def test_prune_compact_gives_the_freed_space_back(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A log that grew before retention existed: pruning alone leaves the file its size.
    db_file = tmp_path / "events.sqlite3"
    config = tmp_path / "service.toml"
    config.write_text(f'[service]\nevent_store = "sqlite:///{db_file}"\n')
    clock = FakeClock()
    store = SqlEventStore(f"sqlite:///{db_file}", clock=clock)
    for _ in range(40):
        store.append(
            "db:a", ANY, [SelfTestFailed(1, (Diagnostic("smtp", "error", "x" * 500),))] * 50
        )
    store.close()
    before = (clock.now() + timedelta(days=1)).isoformat()
    code, out, err = run(
        capsys,
        "--config",
        str(config),
        "events",
        "prune",
        "--before",
        before,
        "--compact",
        "--json",
    )
    report = json.loads(out)
    assert code == exit_codes.OK, err
    assert report["deleted"] == 1_999  # all but the stream's newest
    assert report["file_bytes_after"] < report["file_bytes_before"] / 10


def test_prune_compact_refuses_while_the_service_holds_the_log(
    capsys: pytest.CaptureFixture[str], year: tuple[Path, Path, FakeClock]
) -> None:
    from supervisor.instance_lock import acquire_log

    config, db_file, _ = year
    held = acquire_log(f"sqlite:///{db_file}")  # what a running serve holds
    try:
        code, _, err = run(capsys, "--config", str(config), "events", "prune", "--compact")
    finally:
        held.release()
    assert code == exit_codes.ALREADY_RUNNING
    assert "stop it before --compact" in err
    assert len(err.strip().splitlines()) == 1


def test_prune_compact_on_a_server_log_says_what_to_run_instead(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, postgres_url: str
) -> None:
    config = tmp_path / "service.toml"
    config.write_text(f'[service]\nevent_store = "{postgres_url}"\n')
    SqlEventStore(postgres_url).close()
    code, _, err = run(capsys, "--config", str(config), "events", "prune", "--compact")
    assert code == exit_codes.USAGE
    assert "VACUUM FULL events" in err
