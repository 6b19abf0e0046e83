"""Slow and silent servers, a paused process and SIGTERM, against a real ``serve`` (issue 12).

Each test runs ``email-service serve`` as a subprocess over SQLite practice databases,
with a small hang limit (check-ins every ``CHECKIN`` s, so a mailbox without progress
for ``2 * CHECKIN`` s is hung), and reads what happened from its event log and from
what the mail server stored:

- Postfix's ``smtp-sink -w 1`` answers each message's DATA after a second, healthy but
  slow: a batch takes many hang limits, and no mailbox is called hung, every message is
  stored once, and check-ins go on during the batch.
- the tests' fault proxy as a server that accepts and never answers: the self-test says
  "no answer from HOST:PORT in N s", no mailbox is called hung, and once the server
  answers again every message is stored once.
- SIGSTOP then SIGCONT of the whole process: no mailbox is restarted.
- SIGTERM while a mailbox waits on a silent server (timeouts longer than the 10 s
  promise): the process exits within 10 s (the contract's bound, not a timing figure).
"""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update

from actors import practice_db
from actors.practice_schema import email_messages, init_practice_database
from events.recorded import Recorded
from events.sql_store import SqlEventStore
from events.store import read_all
from events.types import (
    CheckInMissed,
    MailboxStarted,
    MessageSent,
    RestartScheduled,
    SelfTestFailed,
    SelfTestPassed,
)
from tests.fault_proxy import FaultProxy
from tests.mail_helpers import queue_rows, wait_until, write_email_settings
from tests.smtp_servers import RecordingSmtpServer, SmtpSinkServer

CHECKIN = 3.0
"""Check-ins every 3 s: a mailbox without progress for 6 s is hung."""
IO_TIMEOUT = 3.0
"""At most ``CHECKIN`` (the loader's rule); a 1 s-per-message server is well within it."""
ROOT = Path(__file__).resolve().parent.parent


class Serve:
    """One ``email-service serve`` subprocess over a folder of SQLite practice databases."""

    def __init__(self, root: Path, extra_config: str = "") -> None:
        self.root = root
        self.folder = root / "practices"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.store_url = f"sqlite:///{root / 'events.sqlite3'}"
        self.config = root / "service.toml"
        self.config.write_text(
            f'[service]\nserver_id = "SLOW"\nevent_store = "{self.store_url}"\n'
            f'[databases]\nserver_url = "sqlite:///{self.folder}"\n'
            f"[health]\ncheckin_seconds = {CHECKIN}\nprobe_seconds = {CHECKIN}\n"
            f"grace_seconds = {CHECKIN}\n"
            f"[mail]\nio_timeout_seconds = {IO_TIMEOUT}\noutbox_poll_seconds = 1.0\n"
            '[http]\nlisten = "127.0.0.1:0"\n' + extra_config
        )
        self.engines: dict[str, Engine] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self._log = (root / "serve.log").open("ab")

    def add_practice(self, name: str, smtp_host: str, smtp_port: int) -> Engine:
        url = f"sqlite:///{self.folder / name}.sqlite3"
        init_practice_database(url, practice_name=name)
        engine = practice_db.make_engine(url)
        write_email_settings(
            engine,
            smtp_host=smtp_host,
            smtp_port=smtp_port,
            smtp_security="none",
            from_address="reception@smile.example",
            max_per_minute=0,  # unlimited: a batch is as long as the outbox allows
        )
        self.engines[name] = engine
        return engine

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supervisor.cli", "--config", str(self.config), "serve"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            start_new_session=True,
        )

    def events(self) -> list[Recorded]:
        store = SqlEventStore(self.store_url)
        try:
            return list(read_all(store))
        finally:
            store.close()

    def of(self, kind: type) -> list[Recorded]:
        return [r for r in self.events() if isinstance(r.event, kind)]

    def sent(self, name: str) -> int:
        with self.engines[name].connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(email_messages)
                    .where(email_messages.c.status == "sent")
                ).scalar_one()
            )

    def signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for engine in self.engines.values():
            engine.dispose()
        self._log.close()

    def log_text(self) -> str:
        return (self.root / "serve.log").read_text(errors="replace")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    service = Serve(tmp_path)
    try:
        yield service
    finally:
        service.stop()


def queue(engine: Engine, count: int, tag: str) -> None:
    queue_rows(
        engine,
        [
            {"to_addrs": f"patient{n:03d}@example.org", "subject": f"{tag} {n:03d}"}
            for n in range(count)
        ],
    )


def hung_restarts(events: Sequence[Recorded]) -> list[Recorded]:
    """``CheckInMissed`` events and restarts caused by a hang."""
    return [
        r
        for r in events
        if isinstance(r.event, CheckInMissed)
        or (isinstance(r.event, RestartScheduled) and r.event.cause == "hung")
    ]


def passed_since(serve: Serve, position: int, streams: set[str]) -> bool:
    """Whether every one of ``streams`` passed a self-test after the log's ``position``."""
    later = serve.events()[position:]
    return {r.stream for r in later if isinstance(r.event, SelfTestPassed)} >= streams


def duplicates(message_ids: Sequence[str | None]) -> dict[str | None, int]:
    return {m: n for m, n in collections.Counter(message_ids).items() if n > 1}


# --- a slow server ------------------------------------------------------------------------


def test_a_server_that_takes_a_second_per_message_is_busy_not_hung(serve: Serve) -> None:
    messages = 40  # about 40 s of sending: more than six hang limits in one go
    with SmtpSinkServer(extra_args=("-w", "1")) as sink:
        engine = serve.add_practice("Slow Smile", sink.host, sink.port)
        queue(engine, messages, "Slow")
        serve.start()
        wait_until(lambda: serve.sent("Slow Smile") == messages, "every message sent", timeout=240)
        stored = sink.stored_message_ids()
        events = serve.events()
    assert len(stored) == messages
    assert duplicates(stored) == {}
    assert hung_restarts(events) == []
    assert [r.event.incarnation for r in events if isinstance(r.event, MailboxStarted)] == [1]
    sent_at = [r.recorded_at for r in events if isinstance(r.event, MessageSent)]
    during = [
        r
        for r in events
        if isinstance(r.event, SelfTestPassed) and sent_at[0] < r.recorded_at < sent_at[-1]
    ]
    # The batch yielded to the check-in: self-tests went on while the mail was going.
    batch_seconds = (sent_at[-1] - sent_at[0]).total_seconds()
    assert len(during) >= batch_seconds / CHECKIN / 2


# --- a server that accepts and never answers ----------------------------------------------


def test_a_server_that_never_answers_is_a_diagnostic_not_a_hang(serve: Serve) -> None:
    messages = 10
    with RecordingSmtpServer() as smtp, FaultProxy(smtp.host, smtp.port) as silent:
        silent.black_hole(True)
        engine = serve.add_practice("Quiet Smile", silent.host, silent.port)
        queue(engine, messages, "Quiet")
        serve.start()
        expected = f"no answer from {silent.host}:{silent.port} in {IO_TIMEOUT:g} s"

        def said_no_answer() -> bool:
            return any(
                any(expected in d.message for d in r.event.diagnostics)
                for r in serve.of(SelfTestFailed)
            )

        wait_until(said_no_answer, f"a failed self-test saying {expected!r}", timeout=60)
        time.sleep(5 * 2 * CHECKIN)  # five hang limits of silence, to give a hang its chance
        silent_events = serve.events()
        silent.black_hole(False)
        with engine.begin() as conn:  # the rows' backoff (a minute and more) is not the test
            conn.execute(update(email_messages).values(next_attempt_at=None))
        wait_until(lambda: serve.sent("Quiet Smile") == messages, "every message sent", timeout=120)
        stored = smtp.message_ids()
    assert hung_restarts(silent_events) == []
    assert hung_restarts(serve.events()) == []
    assert len(stored) == messages
    assert duplicates(stored) == {}


# --- a paused process -------------------------------------------------------------------------


def test_stopping_and_continuing_the_whole_process_restarts_no_mailbox(serve: Serve) -> None:
    names = ["Paused Smile", "Paused Harbour", "Paused Molar"]
    with RecordingSmtpServer() as smtp:
        for name in names:
            serve.add_practice(name, smtp.host, smtp.port)
        serve.start()
        wait_until(
            lambda: len({r.stream for r in serve.of(SelfTestPassed)}) == len(names),
            "a passed self-test from every database",
            timeout=60,
        )
        resumed_at: list[int] = []
        for _pause in range(2):
            serve.signal(signal.SIGSTOP)
            time.sleep(3 * 2 * CHECKIN)  # three hang limits: every mailbox equally late
            serve.signal(signal.SIGCONT)
            resumed_at.append(len(serve.events()))
            time.sleep(2 * 2 * CHECKIN + 2)  # two hang limits for the watchdog to judge
        events = serve.events()
    assert hung_restarts(events) == []  # (before this change: all three, then the process quit)
    assert sorted(r.stream for r in events if isinstance(r.event, MailboxStarted)) == sorted(
        f"db:{n}" for n in names
    )
    for position in resumed_at:  # and they went on checking in after each pause
        assert passed_since(serve, position, {f"db:{n}" for n in names})
    assert "the process was paused" in serve.log_text()


# --- SIGTERM while a mailbox waits -------------------------------------------------------------


def test_sigterm_stops_the_process_within_ten_seconds_while_a_mailbox_waits(
    tmp_path: Path,
) -> None:
    # Timeouts of a minute (allowed with check-ins a minute apart): the mailbox's wait on
    # the silent server would outlast the contract's 10 s by far.
    service = Serve(tmp_path)
    service.config.write_text(
        service.config.read_text()
        .replace(f"checkin_seconds = {CHECKIN}", "checkin_seconds = 60.0")
        .replace(f"io_timeout_seconds = {IO_TIMEOUT}", "io_timeout_seconds = 60.0")
    )
    try:
        with RecordingSmtpServer() as smtp, FaultProxy(smtp.host, smtp.port) as silent:
            silent.black_hole(True)
            engine = service.add_practice("Waiting Smile", silent.host, silent.port)
            queue(engine, 3, "Waiting")
            service.start()
            wait_until(lambda: silent.connections >= 1, "the mailbox connecting", timeout=60)
            time.sleep(1.0)  # it is now inside its minute-long wait for the greeting
            service.signal(signal.SIGTERM)
            assert service.process is not None
            try:
                code = service.process.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                pytest.fail("serve still ran 10 s after SIGTERM")
        assert code == 0, service.log_text()[-2000:]
    finally:
        service.stop()
