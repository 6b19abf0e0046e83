"""The systemd notify protocol (``sd_notify(3)``), without a third-party package.

systemd (``Type=notify``) tells the process where to report in ``NOTIFY_SOCKET``: a
filesystem path, or a Linux abstract socket written with a leading ``@``. Each report is
one datagram of ``KEY=VALUE`` lines. ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``, the process
it is meant for) says how often systemd expects ``WATCHDOG=1`` before it kills and restarts
the service.

These variables are the service manager's protocol, not settings: they are read here, not
by ``config``. Without ``NOTIFY_SOCKET`` (a terminal, a test, Windows) every method is a
no-op, so callers never ask whether they run under systemd.

Failure rule: a report that cannot be sent (systemd restarted, the socket gone, its queue
full) is logged once, at WARNING, and dropped. Nothing here raises on a send: the service
must not die because its supervisor's socket vanished; a missed ``WATCHDOG=1`` is exactly
the signal systemd acts on anyway.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
from collections.abc import Mapping
from types import TracebackType

log = logging.getLogger(__name__)

# A datagram to systemd is queued at once unless its queue is full; a full queue must not
# stall the thread that pings the watchdog, so a send gives up after this long.
_SEND_TIMEOUT_SECONDS = 1.0


class Notifier:
    """Reports readiness, status and watchdog pings to systemd.

    Construct once per process from the environment (``os.environ`` by default; a test
    passes its own mapping). Every method may be called from any thread: one lock guards
    the socket. The socket is opened at the first report and closed by ``close()`` (or by
    leaving a ``with`` block).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_usec = _watchdog_usec(env) if self._address is not None else None
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._send_failed_before = False

    @property
    def enabled(self) -> bool:
        """True when systemd gave a notify socket (reports are sent), False when not."""
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between ``watchdog()`` calls: half of systemd's ``WATCHDOG_USEC``.

        None when there is no watchdog for this process: no notify socket, no
        ``WATCHDOG_USEC``, or a ``WATCHDOG_PID`` naming another process.
        """
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2_000_000

    def ready(self, status: str = "") -> None:
        """Report that start-up is done (``READY=1``), with an optional one-line status."""
        fields = ["READY=1"]
        if status:
            fields.append(f"STATUS={_one_line(status)}")
        self._send(fields)

    def stopping(self) -> None:
        """Report that a clean stop has begun (``STOPPING=1``)."""
        self._send(["STOPPING=1"])

    def watchdog(self) -> None:
        """Ping the watchdog (``WATCHDOG=1``); a no-op when this process has no watchdog.

        Call it only while the process is healthy: the missing ping is what makes systemd
        restart a hung service.
        """
        if self._watchdog_usec is not None:
            self._send(["WATCHDOG=1"])

    def status(self, text: str) -> None:
        """Set the line ``systemctl status`` shows (``STATUS=``); newlines become spaces."""
        self._send([f"STATUS={_one_line(text)}"])

    def extend_timeout(self, seconds: float) -> None:
        """Ask for ``seconds`` more to finish starting or stopping (``EXTEND_TIMEOUT_USEC=``).

        Raises ValueError when ``seconds`` is not a finite number greater than 0 (a bug in
        the caller, not a failure to report).
        """
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"extend_timeout needs seconds > 0, got {seconds!r}")
        self._send([f"EXTEND_TIMEOUT_USEC={math.ceil(seconds * 1_000_000)}"])

    def close(self) -> None:
        """Close the socket; a later report opens a new one."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, fields: list[str]) -> None:
        if self._address is None:
            return
        payload = "\n".join(fields).encode("utf-8")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._sock.settimeout(_SEND_TIMEOUT_SECONDS)
                self._sock.sendto(payload, self._address)
            except OSError as exc:
                self._report_failure(exc)

    def _report_failure(self, exc: OSError) -> None:
        # Called with the lock held. Every later failure is likely the same one (the socket
        # is gone for good), so only the first is worth a line in the log.
        if self._send_failed_before:
            log.debug("systemd notify: send failed again: %s", exc)
            return
        self._send_failed_before = True
        log.warning(
            "systemd notify: cannot report to NOTIFY_SOCKET %s (%s); the service goes on, "
            "but systemd may think it hung (later failures are not logged)",
            _printable(self._address),
            exc,
        )


def _socket_address(value: str) -> str | None:
    """The address to send to, or None for no notifications."""
    if not value:
        return None
    if value.startswith("@"):
        # A Linux abstract socket: the name starts with a NUL byte instead of '@'.
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    # systemd >= 254 can also hand out "vsock:CID:PORT" (for virtual machines), which this
    # service does not need; a relative path is not allowed by the protocol.
    log.warning("systemd notify: NOTIFY_SOCKET %r is not supported; not reporting", value)
    return None


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    """Microseconds from ``WATCHDOG_USEC`` when the watchdog is meant for this process."""
    raw_usec = env.get("WATCHDOG_USEC", "")
    if not raw_usec:
        return None
    raw_pid = env.get("WATCHDOG_PID", "")
    if raw_pid:
        # The variables are inherited: a child started by the service must not ping the
        # service's watchdog on its behalf.
        try:
            if int(raw_pid) != os.getpid():
                return None
        except ValueError:
            log.warning("systemd notify: WATCHDOG_PID %r is not a number; no watchdog", raw_pid)
            return None
    try:
        usec = int(raw_usec)
    except ValueError:
        usec = 0
    if usec <= 0:
        log.warning(
            "systemd notify: WATCHDOG_USEC %r is not a positive number; no watchdog", raw_usec
        )
        return None
    return usec


def _one_line(text: str) -> str:
    """``text`` with its lines joined by spaces: a newline would start a new KEY=VALUE."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _printable(address: str | None) -> str:
    return "" if address is None else address.replace("\0", "@", 1)
