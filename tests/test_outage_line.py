"""The outage line after the service itself was killed or paused (issue 12, item 6): a real
``serve`` over a SQLite practice; the first check-in after the gap says "Email was not
available for …", from when the last check-in before the gap said the next was due, by
the database's clock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from actors import practice_db
from actors.practice_schema import email_service_checkins as checkins
from actors.practice_schema import email_service_diagnostics as diagnostics
from tests.mail_helpers import wait_until
from tests.test_service import make_practices

OUTAGE = "Email was not available for "


def start(tmp_path: Path) -> subprocess.Popen[bytes]:
    config = tmp_path / "service.toml"
    config.write_text(
        f'[service]\nevent_store = "sqlite:///{tmp_path / "events.sqlite3"}"\n'
        f'[databases]\nserver_url = "sqlite:///{tmp_path / "practices"}"\n'
        "[health]\ncheckin_seconds = 1.0\ngrace_seconds = 1.0\n[mail]\nio_timeout_seconds = 1.0\n"
        '[http]\nlisten = "127.0.0.1:0"\n'
    )
    with (tmp_path / "serve.log").open("ab") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "supervisor.cli", "--config", str(config), "serve"],
            stderr=log,
        )


def newest_due(engine: practice_db.Engine) -> object:
    with engine.connect() as conn:
        return conn.execute(
            select(checkins.c.next_checkin_due_at).order_by(checkins.c.id.desc()).limit(1)
        ).scalar()


def outage_lines(engine: practice_db.Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(select(diagnostics.c.message)).scalars().all()
    return [m for m in rows if m.startswith(OUTAGE)]


def test_after_a_killed_service_the_next_checkin_says_how_long(tmp_path: Path) -> None:
    make_practices(tmp_path / "practices", "Smile Dental")
    engine = practice_db.make_engine(f"sqlite:///{tmp_path / 'practices' / 'Smile Dental.sqlite3'}")
    proc = start(tmp_path)
    try:
        wait_until(lambda: newest_due(engine) is not None, "a check-in", timeout=60)
        proc.kill()
        proc.wait()
        due = newest_due(engine)
        time.sleep(3.0)  # the service is dead for longer than an interval plus the grace
        proc = start(tmp_path)
        wait_until(lambda: outage_lines(engine) != [], "the outage line", timeout=60)
    finally:
        proc.kill()
        proc.wait()
        engine.dispose()
    [line] = outage_lines(engine)
    assert f"from {due:%Y-%m-%d %H:%M:%S} to " in line


def test_after_a_paused_service_the_next_checkin_says_how_long(tmp_path: Path) -> None:
    make_practices(tmp_path / "practices", "Smile Dental")
    engine = practice_db.make_engine(f"sqlite:///{tmp_path / 'practices' / 'Smile Dental.sqlite3'}")
    proc = start(tmp_path)
    try:
        wait_until(lambda: newest_due(engine) is not None, "a check-in", timeout=60)
        os.kill(proc.pid, signal.SIGSTOP)  # a paused virtual machine
        time.sleep(4.0)
        os.kill(proc.pid, signal.SIGCONT)
        wait_until(lambda: outage_lines(engine) != [], "the outage line", timeout=60)
    finally:
        proc.kill()
        proc.wait()
        engine.dispose()
    assert len(outage_lines(engine)) >= 1
