"""The status page's port is not the service (issue 12, item 5): with ``http.listen``
taken, a real ``serve`` keeps sending every practice's mail, logs the failure as an event
and a line, retries with backoff, and serves ``/healthz`` once the port is free. A port
another socket listens on is never shared, ``SO_REUSEADDR`` or not."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from actors import practice_db
from actors.practice_schema import init_practice_database
from events.sql_store import SqlEventStore
from events.store import read_all
from events.types import ChildCrashed, ChildRestartScheduled
from supervisor import exit_codes
from supervisor.http.server import HttpError, HttpServer
from tests.mail_helpers import queue_row, read_row, wait_until, write_email_settings
from tests.smtp_servers import RecordingSmtpServer, free_port

PRACTICES = ("Smile Dental", "Harbour Dental")


def hold_port(reuse: bool) -> socket.socket:
    """Listen on a free loopback port, as another program (or another service) would."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuse:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", free_port()))
    sock.listen(1)
    return sock


@pytest.mark.parametrize("reuse", [False, True], ids=["plain", "so_reuseaddr"])
def test_a_port_another_socket_listens_on_is_never_shared(reuse: bool) -> None:
    held = hold_port(reuse)
    try:
        server = HttpServer(FastAPI(), "127.0.0.1", held.getsockname()[1])
        with pytest.raises(HttpError, match=r"cannot listen on 127\.0\.0\.1:.*in use"):
            server.start()
    finally:
        held.close()


@pytest.fixture
def smtp() -> Iterator[RecordingSmtpServer]:
    with RecordingSmtpServer() as server:
        yield server


def test_serve_sends_mail_while_its_port_is_taken_and_listens_once_free(
    tmp_path: Path, smtp: RecordingSmtpServer
) -> None:
    folder = tmp_path / "practices"
    folder.mkdir()
    urls = {}
    for name in PRACTICES:
        urls[name] = f"sqlite:///{folder / name}.sqlite3"
        init_practice_database(urls[name], practice_name=name)
        engine = practice_db.make_engine(urls[name])
        write_email_settings(
            engine,
            sending_enabled=True,
            send_window="",
            from_address="reception@smile.example",
            smtp_host=smtp.host,
            smtp_port=smtp.port,
            smtp_security="none",
            smtp_username="",
            smtp_password="",
        )
        engine.dispose()
    held = hold_port(reuse=True)
    port = held.getsockname()[1]
    store_url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    config = tmp_path / "service.toml"
    config.write_text(
        f'[service]\nevent_store = "{store_url}"\n'
        f'[databases]\nserver_url = "sqlite:///{folder}"\n'
        "[health]\ncheckin_seconds = 2.0\n"
        "[supervision]\nbackoff_min_seconds = 0.2\nbackoff_max_seconds = 1.0\n"
        "[mail]\noutbox_poll_seconds = 1.0\nio_timeout_seconds = 2.0\n"
        f'[http]\nlisten = "127.0.0.1:{port}"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "--config", str(config), "serve"],
        stderr=subprocess.PIPE,
        text=True,
    )
    store = SqlEventStore(store_url)
    engines = {name: practice_db.make_engine(url) for name, url in urls.items()}
    try:
        rows = {name: queue_row(engine) for name, engine in engines.items()}
        wait_until(
            lambda: all(read_row(engines[n], r)["status"] == "sent" for n, r in rows.items()),
            "every practice's mail sent while the port is taken",
            timeout=60,
        )
        assert proc.poll() is None
        assert len(smtp.messages) == len(PRACTICES)
        wait_until(
            lambda: any(
                isinstance(r.event, ChildRestartScheduled) and r.event.attempt >= 2
                for r in read_all(store)
            ),
            "the HTTP server retried",
            timeout=30,
        )
        crashed = [r.event for r in read_all(store) if isinstance(r.event, ChildCrashed)]
        assert {e.child for e in crashed} == {"http"}
        assert all(f"cannot listen on 127.0.0.1:{port}" in e.error for e in crashed)
        held.close()  # the other program ends: the retry gets the port

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_until(healthy, "/healthz once the port is free", timeout=30)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        held.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        store.close()
        for engine in engines.values():
            engine.dispose()
    assert proc.returncode == exit_codes.OK, err
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err
