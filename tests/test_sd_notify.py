"""The systemd notify protocol, against real unix datagram sockets (no mocks)."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.sd_notify import Notifier


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing in for systemd's, and the NOTIFY_SOCKET value for it."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(5)
    sock.bind(str(path))
    yield sock, str(path)
    sock.close()


@pytest.fixture
def notifier(receiver: tuple[socket.socket, str]) -> Iterator[Notifier]:
    with Notifier({"NOTIFY_SOCKET": receiver[1]}) as notifier:
        yield notifier


def watched_notifier(socket_path: str, **extra: str) -> Notifier:
    return Notifier({"NOTIFY_SOCKET": socket_path, "WATCHDOG_USEC": "30000000", **extra})


def received(receiver: tuple[socket.socket, str]) -> bytes:
    return receiver[0].recv(4096)


def nothing_waiting(receiver: tuple[socket.socket, str]) -> bool:
    receiver[0].setblocking(False)
    try:
        receiver[0].recv(4096)
    except BlockingIOError:
        return True
    return False


def test_it_sends_ready(notifier: Notifier, receiver: tuple[socket.socket, str]) -> None:
    notifier.ready()
    assert received(receiver) == b"READY=1"


def test_it_sends_ready_with_a_status(
    notifier: Notifier, receiver: tuple[socket.socket, str]
) -> None:
    notifier.ready("serving 3 databases")
    assert received(receiver) == b"READY=1\nSTATUS=serving 3 databases"


def test_it_sends_stopping(notifier: Notifier, receiver: tuple[socket.socket, str]) -> None:
    notifier.stopping()
    assert received(receiver) == b"STOPPING=1"


def test_it_sends_a_status(notifier: Notifier, receiver: tuple[socket.socket, str]) -> None:
    notifier.status("Smile Dental: SMTP refused the login")
    assert received(receiver) == b"STATUS=Smile Dental: SMTP refused the login"


def test_it_flattens_a_status_with_newlines_to_one_line(
    notifier: Notifier, receiver: tuple[socket.socket, str]
) -> None:
    notifier.status("2 databases not available:\nSmile Dental\r\nBright Teeth Zoë\n")
    assert (
        received(receiver)
        == "STATUS=2 databases not available: Smile Dental Bright Teeth Zoë".encode()
    )


def test_it_sends_extend_timeout_in_microseconds(
    notifier: Notifier, receiver: tuple[socket.socket, str]
) -> None:
    notifier.extend_timeout(2.5)
    assert received(receiver) == b"EXTEND_TIMEOUT_USEC=2500000"


def test_it_refuses_an_extend_timeout_that_is_not_positive(notifier: Notifier) -> None:
    with pytest.raises(ValueError, match="seconds > 0"):
        notifier.extend_timeout(0)


def test_it_sends_watchdog_pings(receiver: tuple[socket.socket, str]) -> None:
    with watched_notifier(receiver[1]) as notifier:
        notifier.watchdog()
    assert received(receiver) == b"WATCHDOG=1"


def test_watchdog_interval_is_half_of_watchdog_usec(receiver: tuple[socket.socket, str]) -> None:
    with watched_notifier(receiver[1]) as notifier:
        assert notifier.watchdog_interval == 15.0


def test_a_watchdog_pid_of_this_process_keeps_the_watchdog(
    receiver: tuple[socket.socket, str],
) -> None:
    with watched_notifier(receiver[1], WATCHDOG_PID=str(os.getpid())) as notifier:
        assert notifier.watchdog_interval == 15.0


def test_a_watchdog_pid_of_another_process_disables_the_watchdog(
    receiver: tuple[socket.socket, str],
) -> None:
    with watched_notifier(receiver[1], WATCHDOG_PID=str(os.getpid() + 1)) as notifier:
        assert notifier.watchdog_interval is None


def test_it_sends_no_ping_for_another_process_watchdog(
    receiver: tuple[socket.socket, str],
) -> None:
    with watched_notifier(receiver[1], WATCHDOG_PID=str(os.getpid() + 1)) as notifier:
        notifier.watchdog()
    assert nothing_waiting(receiver)


def test_without_watchdog_usec_there_is_no_watchdog_interval(notifier: Notifier) -> None:
    assert notifier.watchdog_interval is None


def test_it_is_enabled_with_a_notify_socket(notifier: Notifier) -> None:
    assert notifier.enabled


def test_without_notify_socket_it_is_disabled() -> None:
    assert not Notifier({}).enabled


def test_without_notify_socket_every_method_is_a_no_op() -> None:
    with Notifier({"WATCHDOG_USEC": "30000000"}) as notifier:
        notifier.ready("up")
        notifier.status("up")
        notifier.watchdog()
        notifier.extend_timeout(5)
        notifier.stopping()
        assert notifier.watchdog_interval is None


def test_it_sends_to_an_abstract_socket() -> None:
    name = f"email-service-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.bind("\0" + name)
        with Notifier({"NOTIFY_SOCKET": "@" + name}) as notifier:
            notifier.ready()
        assert sock.recv(4096) == b"READY=1"


def test_a_vanished_socket_does_not_raise(tmp_path: Path) -> None:
    # Given a notifier that has reported to its socket, which then goes (systemd restarted)
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        notifier = watched_notifier(str(path))
        notifier.ready()
    path.unlink()
    # When it reports again, then nothing is raised
    with notifier:
        notifier.watchdog()
        notifier.status("still here")
        notifier.stopping()


def test_a_vanished_socket_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="supervisor.sd_notify"),
        Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) as notifier,
    ):
        notifier.status("one")
        notifier.status("two")
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_it_sends_again_once_the_socket_is_back(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with Notifier({"NOTIFY_SOCKET": str(path)}) as notifier:
        notifier.status("lost")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.bind(str(path))
            notifier.status("found")
            assert sock.recv(4096) == b"STATUS=found"
