"""The connection budget on real PostgreSQL and MariaDB servers (issue 17).

Each test makes its own login and more practice databases than the budget
(``tests/many_practices.py``) and counts that login's connections as the server sees them,
so other tests on the same server are not counted. The server's own limit is never
lowered (other tests share it): the login's own limit (PostgreSQL ``CONNECTION LIMIT``,
MariaDB ``MAX_USER_CONNECTIONS``) is, which the server refuses with the same errors
(SQLSTATE 53300, MariaDB 1226) through the same path as a full server.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from config import Settings, load_settings
from events.store import read_all
from events.types import SelfTestFailed, SelfTestPassed
from supervisor.cli import main
from supervisor.commands.budget_report import held_by_service
from supervisor.service import Tree, start_http, start_tree, stop_tree
from supervisor.workstation_view import read_status
from tests.many_practices import ManyPractices, many_practices
from tests.servers import MARIADB_ADMIN_URL, POSTGRES_ADMIN_URL
from tests.smtp_servers import free_port

BACKENDS = ["postgresql", "mariadb"]
BUDGET = 4
PRACTICES = 10
WAIT_SECONDS = 90.0


def settings_for(tmp_path: Path, made: ManyPractices, budget: int = BUDGET) -> Settings:
    return load_settings(
        environ={},
        overrides={
            "service.event_store": f"sqlite:///{tmp_path / 'events.sqlite3'}",
            "service.server_id": "budget-test",
            "databases.server_url": made.server_url,
            "databases.max_connections": budget,
            "databases.rescan_seconds": 5.0,
            "health.checkin_seconds": 2.0,
            "mail.io_timeout_seconds": 2.0,
        },
    )


def admin_url(made: ManyPractices, name: str) -> str:
    admin = POSTGRES_ADMIN_URL if made.backend == "postgresql" else MARIADB_ADMIN_URL
    return make_url(admin).set(database=name).render_as_string(hide_password=False)


def running(made: ManyPractices) -> list[str]:
    """The practices a workstation (another login) reads as running."""
    grace = timedelta(seconds=15)
    return [
        name
        for name in made.names
        if read_status(name, admin_url(made, name), grace).status.status == "running"
    ]


def wait_until(check: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.25)


class Sampler:
    """Counts the login's connections, and connects as another client, every 20 ms."""

    def __init__(self, made: ManyPractices) -> None:
        self._made = made
        self._stop = threading.Event()
        self.counts: list[int] = []
        self.client_failures: list[str] = []
        admin = POSTGRES_ADMIN_URL if made.backend == "postgresql" else MARIADB_ADMIN_URL
        self._client = create_engine(admin, poolclass=NullPool)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.counts.append(self._made.connections())
            try:
                with self._client.connect() as conn:  # a new connection each time
                    conn.execute(text("SELECT 1"))
            except Exception as exc:
                self.client_failures.append(str(exc).splitlines()[0])
            self._stop.wait(0.02)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._client.dispose()


def lasting(counts: list[int]) -> list[int]:
    """The counts that lasted from one sample to the next (20 ms or more apart).

    A connection the service closed (to give its slot to another database) is listed by
    the server until its backend has read the close and exited; on a machine loaded by
    other work that was seen to take longer than a sample's gap, once in a full suite at
    a load of 15 on 2 cores, while the service's own count stayed at the budget (which
    the test asserts too). A connection held beyond the budget lasts and is counted.
    """
    return [min(a, b) for a, b in itertools.pairwise(counts)] or counts


@contextmanager
def serving(settings: Settings) -> Iterator[Tree]:
    tree = start_tree(settings)
    try:
        yield tree
    finally:
        stop_tree(tree, "test finished")


@pytest.mark.parametrize("backend", BACKENDS)
def test_more_practices_than_the_budget_all_run_within_it(backend: str, tmp_path: Path) -> None:
    with many_practices(backend, PRACTICES) as made:
        with Sampler(made) as sampler, serving(settings_for(tmp_path, made)) as tree:
            wait_until(lambda: len(running(made)) == PRACTICES, "every practice is running")
            time.sleep(5.0)  # a rescan and a few check-ins more, still sampled
            assert running(made) == made.names
        assert max(lasting(sampler.counts)) <= BUDGET
        assert max(sampler.counts) > 0  # the sampler saw the service's connections
        assert sampler.client_failures == []
        assert tree.budgets is not None
        (view,) = tree.budgets.views()
        assert view.peak <= BUDGET
        assert view.budget == BUDGET


def failures_with(store_tree: Tree, message_start: str) -> dict[str, list[str]]:
    lines: dict[str, list[str]] = {}
    for record in read_all(store_tree.store):
        event = record.event
        if isinstance(event, SelfTestFailed):
            for d in event.diagnostics:
                if d.message.startswith(message_start):
                    lines.setdefault(record.stream, []).append(d.message)
    return lines


def passes_after(tree: Tree, seq: int) -> set[str]:
    return {r.stream for r in read_all(tree.store, seq) if isinstance(r.event, SelfTestPassed)}


def kill_one_connection(made: ManyPractices) -> None:
    """Drop one of the login's connections from the server side, as a restart of the
    practice software's connection pool or an administrator might."""
    with made.admin.connect() as conn:
        if made.backend == "postgresql":
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE usename = :login LIMIT 1"
                ),
                {"login": made.login},
            )
        else:
            ids = conn.execute(
                text("SELECT id FROM information_schema.processlist WHERE user = :login"),
                {"login": made.login},
            ).scalars()
            for thread in list(ids)[:1]:
                conn.execute(text(f"KILL CONNECTION {int(thread)}"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_server_without_free_slots_degrades_and_recovers(
    backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A limit from the start: MariaDB counts an account's connections only while it has
    # one, so a limit set later would not count those already open.
    with many_practices(backend, PRACTICES, connection_limit=50) as made:
        with Sampler(made) as sampler, serving(settings_for(tmp_path, made)) as tree:
            wait_until(lambda: len(running(made)) == PRACTICES, "every practice is running")
            assert tree.budgets is not None
            held = tree.budgets.views()[0].held
            assert 0 < held <= BUDGET
            # The server now accepts fewer connections from this login than the service
            # holds, and one of them is dropped: the service must ask for a new one.
            made.set_connection_limit(1)
            kill_one_connection(made)
            wait_until(
                lambda: tree.budgets is not None and tree.budgets.views()[0].refusals > 0,
                "the server refused a connection",
            )
            started = max(r.seq for r in read_all(tree.store))
            time.sleep(6.0)  # three check-ins while short of slots
            assert tree.budgets.views()[0].short_of_slots
            # What it held goes on working: practices still pass their self-tests.
            assert passes_after(tree, started)
            # Logged once for the server, not once per practice or per attempt.
            refused = [r for r in caplog.records if "refused a connection" in r.getMessage()]
            assert len(refused) == 1
            # Slots free again: every practice recovers.
            made.set_connection_limit(None)
            wait_until(
                lambda: tree.budgets is not None and not tree.budgets.views()[0].short_of_slots,
                "the service has its budget again",
            )
            wait_until(lambda: len(running(made)) == PRACTICES, "every practice runs again")
        assert max(lasting(sampler.counts)) <= BUDGET
        assert sampler.client_failures == []


def test_a_practice_that_finds_no_free_slot_says_so_in_its_diagnostics(tmp_path: Path) -> None:
    # PostgreSQL: a connection cannot move between databases, so a practice whose turn
    # comes while the server refuses finds none (on MariaDB the held ones move to it).
    message = "the database server has no free connections; the email service is using"
    with (
        many_practices("postgresql", PRACTICES) as made,
        serving(settings_for(tmp_path, made)) as tree,
    ):
        wait_until(lambda: len(running(made)) == PRACTICES, "every practice is running")
        made.set_connection_limit(1)
        wait_until(lambda: failures_with(tree, message), "a practice's self-test says so")
        made.set_connection_limit(None)
        lines = [line for found in failures_with(tree, message).values() for line in found]
    assert all(re.fullmatch(message + r" \d+ of them", line) for line in lines)


def test_metrics_and_the_databases_command_show_what_the_service_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    with many_practices("postgresql", PRACTICES) as made:
        settings = settings_for(tmp_path, made)
        settings = replace(settings, http=replace(settings.http, listen=f"127.0.0.1:{port}"))
        config = tmp_path / "service.toml"
        config.write_text(
            f'[databases]\nserver_url = "{made.server_url}"\nmax_connections = {BUDGET}\n'
            f'[http]\nlisten = "127.0.0.1:{port}"\n'
        )
        with serving(settings) as tree:
            http = start_http(settings, tree)
            try:
                wait_until(lambda: len(running(made)) == PRACTICES, "every practice is running")
                with urllib.request.urlopen(f"{http.url}metrics", timeout=10) as response:
                    metrics = response.read().decode()
                server = 'server="postgresql://127.0.0.1:5432"'
                assert f"email_service_db_connection_budget{{{server}}} {BUDGET}.0" in metrics
                held = held_by_service(metrics)["postgresql://127.0.0.1:5432"]
                assert 0 < held <= BUDGET
                capsys.readouterr()
                assert main(["--config", str(config), "databases"]) == 0
                out = capsys.readouterr().out
            finally:
                http.stop()
    line = next(x for x in out.splitlines() if x.startswith("Connection budget on "))
    assert f": {BUDGET} (databases.max_connections {BUDGET};" in line
    match = re.search(r"the email service holds (\d+) of them now", line)
    assert match is not None
    assert 0 < int(match[1]) <= BUDGET


def test_on_mariadb_a_connection_moves_between_databases_instead_of_reconnecting(
    tmp_path: Path,
) -> None:
    with many_practices("mariadb", PRACTICES) as made:
        with Sampler(made) as sampler, serving(settings_for(tmp_path, made)) as tree:
            wait_until(lambda: len(running(made)) == PRACTICES, "every practice is running")
        assert tree.budgets is not None
        (view,) = tree.budgets.views()
        assert view.moves > 0
        assert max(lasting(sampler.counts)) <= BUDGET
