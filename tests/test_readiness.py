"""Readiness that tells the truth: systemd hears "still starting" until the tree answers,
READY=1 then, and a failed start says why; against a real unix datagram NOTIFY_SOCKET."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors.messages import Init, Ping
from config import load_settings
from supervisor import exit_codes
from supervisor.cli import main
from supervisor.sd_notify import Notifier
from supervisor.service import Tree, serve_until_stopped, wait_until_up


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[socket.socket, Notifier]]:
    """A datagram socket standing in for systemd's, and a notifier that reports to it."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    with Notifier({"NOTIFY_SOCKET": str(path)}) as notifier:
        yield sock, notifier
    sock.close()


def received(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    return sock.recv(4096)


def everything_sent(sock: socket.socket) -> list[str]:
    sock.setblocking(False)
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


def test_serve_says_it_is_starting_then_ready_then_stopping(
    tmp_path: Path, systemd: tuple[socket.socket, Notifier]
) -> None:
    sock, notifier = systemd
    (tmp_path / "practices").mkdir()
    settings = load_settings(
        environ={},
        overrides={
            "service.event_store": f"sqlite:///{tmp_path / 'events.sqlite3'}",
            "databases.server_url": f"sqlite:///{tmp_path / 'practices'}",
            "http.listen": "127.0.0.1:0",
        },
    )
    stop = threading.Event()
    outcome = serve_until_stopped(
        settings, notifier=notifier, stop=stop, on_ready=lambda _url: stop.set(),
        install_signals=False,
    )  # fmt: skip
    sent = everything_sent(sock)
    ready = sent.index("READY=1\nSTATUS=serving")
    assert outcome.code == exit_codes.OK
    assert sent[0] == "STATUS=starting: opening the event log"
    assert "EXTEND_TIMEOUT_USEC=30000000" in sent[:ready]
    assert any(m.startswith("STATUS=starting: ") for m in sent[1:ready])
    assert sent[ready + 1 :] == ["STOPPING=1"]


class _SlowSupervisor(pykka.ThreadingActor):
    """Builds its tree (its Init) only when the test lets it: a start of any length."""

    def __init__(self, gate: threading.Event, fail: bool = False) -> None:
        super().__init__()
        self._gate = gate
        self._fail = fail
        self.fatal: list[str] = []

    def on_start(self) -> None:
        self.actor_ref.tell(Init())

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Init):
            self._gate.wait(timeout=30)
            if self._fail:
                raise RuntimeError("the event log cannot be read")
            return None
        return isinstance(message, Ping)


class _Answering(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return isinstance(message, Ping)


def _tree(supervisor: pykka.ActorRef[Any]) -> Tree:
    tree = Tree(None, None, supervisor)  # type: ignore[arg-type]  # only what waiting reads
    tree.children["watchdog"] = _Answering.start()
    return tree


def test_a_long_start_keeps_asking_systemd_for_more_time_and_never_gives_up(
    systemd: tuple[socket.socket, Notifier],
) -> None:
    sock, notifier = systemd
    gate = threading.Event()
    tree = _tree(_SlowSupervisor.start(gate))
    tree.progress.set("reading the stored start-up state and the events after it")
    result: list[str | None] = []
    waiting = threading.Thread(
        target=lambda: result.append(wait_until_up(tree, notifier, threading.Event()))
    )
    try:
        waiting.start()
        # Far past the old fixed 5 s wait, in polls: each one extends and says where it is.
        heard = [received(sock).decode() for _ in range(14)]
        gate.set()
        waiting.join(timeout=30)
    finally:
        gate.set()
        pykka.ActorRegistry.stop_all()
    assert result == [None]
    assert heard.count("EXTEND_TIMEOUT_USEC=30000000") == 7
    assert (
        heard.count("STATUS=starting: reading the stored start-up state and the events after it")
        == 7
    )


def test_a_start_that_fails_says_why(systemd: tuple[socket.socket, Notifier]) -> None:
    _, notifier = systemd
    gate = threading.Event()
    gate.set()
    supervisor = _SlowSupervisor.start(gate, fail=True)
    tree = _tree(supervisor)
    try:
        reason = wait_until_up(tree, notifier, threading.Event())
    finally:
        pykka.ActorRegistry.stop_all()
    assert reason == "the supervisor stopped while starting"


def test_a_fatal_report_while_starting_is_the_reason(
    systemd: tuple[socket.socket, Notifier],
) -> None:
    _, notifier = systemd
    gate = threading.Event()
    tree = _tree(_SlowSupervisor.start(gate))
    tree.fatal.append("3 mailboxes failed at once; the process must restart")
    tree.fatal_event.set()
    try:
        reason = wait_until_up(tree, notifier, threading.Event())
    finally:
        gate.set()
        pykka.ActorRegistry.stop_all()
    assert reason == "3 mailboxes failed at once; the process must restart"


def test_serve_that_cannot_open_its_log_exits_with_one_line_and_the_code_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the log's folder should be")
    config = tmp_path / "service.toml"
    config.write_text(
        f'[service]\nevent_store = "sqlite:///{blocked / "events.sqlite3"}"\n'
        f'[databases]\nserver_url = "sqlite:///{tmp_path}"\n'
    )
    code = main(["--config", str(config), "serve"])
    lines = [line for line in capsys.readouterr().err.splitlines() if "(exit " in line]
    assert (code, len(lines)) == (exit_codes.CONFIG, 1), lines
    assert lines[0].startswith("email-service: cannot open the event log sqlite:///")
    assert lines[0].endswith("(exit 78 CONFIG)")
