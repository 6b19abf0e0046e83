"""How the operating system asks the service to stop, on Linux and on Windows.

Linux (systemd): SIGTERM, or SIGINT (Ctrl-C in a terminal). Windows has no SIGTERM: a
console program is asked to stop by a console control event. Ctrl-C (``CTRL_C_EVENT``)
is what both usual service wrappers send on a service stop (WinSW, then its
``stoptimeout``; NSSM, then its ``AppStopMethodConsole`` wait, before either kills the
process), Ctrl-Break (``CTRL_BREAK_EVENT``) what ``GenerateConsoleCtrlEvent`` sends to a
process group, and ``CTRL_CLOSE_EVENT``/``CTRL_SHUTDOWN_EVENT`` come when the console
closes or Windows shuts down: Windows ends the process as soon as the handler returns
(or after about 5 s), so for those the handler waits for the service to have stopped.
``CTRL_LOGOFF_EVENT`` reaches services whenever any user logs off the server: it is not a
stop, and is ignored. Every stop has the same effect as SIGTERM: the stop is requested
with the event's name as the reason (``ServiceStopping`` in the event log).

Each path is chosen by a ``platform`` argument (``sys.platform`` by default), so the
Windows one runs in the tests on Linux: ``console_control_handler`` is the handler
itself, a plain function; only registering it (``SetConsoleCtrlHandler`` through
``ctypes``) is Windows-only and untested here.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

CTRL_C_EVENT = 0
CTRL_BREAK_EVENT = 1
CTRL_CLOSE_EVENT = 2
CTRL_LOGOFF_EVENT = 5
CTRL_SHUTDOWN_EVENT = 6
CONTROL_EVENT_NAMES = {
    CTRL_C_EVENT: "CTRL_C_EVENT",
    CTRL_BREAK_EVENT: "CTRL_BREAK_EVENT",
    CTRL_CLOSE_EVENT: "CTRL_CLOSE_EVENT",
    CTRL_LOGOFF_EVENT: "CTRL_LOGOFF_EVENT",
    CTRL_SHUTDOWN_EVENT: "CTRL_SHUTDOWN_EVENT",
}
_WAIT_FOR_STOPPED = frozenset({CTRL_CLOSE_EVENT, CTRL_SHUTDOWN_EVENT})

CLOSE_WAIT_SECONDS = 10.0
"""How long a close or shutdown event's handler waits for the service to stop (Windows
itself may end the process sooner: about 5 s after a close)."""


class StopRequest:
    """Whether, and why, the service was asked to stop; and whether it has stopped.

    ``ask`` may be called from any thread, a signal handler included; the first reason
    is kept. ``stopped`` is set by the service once it has stopped (flushed its log).
    """

    def __init__(self, event: threading.Event | None = None) -> None:
        self.event = event or threading.Event()
        self.stopped = threading.Event()
        self._reason = "stop requested"

    @property
    def reason(self) -> str:
        """Why the stop was asked for (the first reason given)."""
        return self._reason

    def ask(self, reason: str) -> None:
        """Ask the service to stop, saying why."""
        if not self.event.is_set():
            self._reason = reason
            self.event.set()


def stop_signal_names(platform: str = sys.platform) -> tuple[str, ...]:
    """The signals that stop the service on ``platform``. Pure.

    On Windows the C runtime raises SIGINT for Ctrl-C and SIGBREAK for every other
    console control event; they are the fallback should the console handler not be
    registered (it runs first and answers every event itself).
    """
    if platform == "win32":
        return ("SIGINT", "SIGBREAK")
    return ("SIGTERM", "SIGINT")


def console_control_handler(
    request: StopRequest, wait_seconds: float = CLOSE_WAIT_SECONDS
) -> Callable[[int], bool]:
    """Return the Windows console control handler for ``request``: called with the
    event's number on a thread Windows starts for it; returns True (handled).

    Ctrl-C and Ctrl-Break ask for the stop and return at once (the service stops on its
    own); close and shutdown ask, then wait up to ``wait_seconds`` for the service to have
    stopped, since Windows ends the process when the handler returns; a user's log-off is
    ignored. An unknown event is left to the next handler (False).
    """

    def handle(ctrl_type: int) -> bool:
        name = CONTROL_EVENT_NAMES.get(ctrl_type)
        if name is None:
            return False
        if ctrl_type == CTRL_LOGOFF_EVENT:
            return True  # someone logged off the server: not a stop of the service
        request.ask(name)
        if ctrl_type in _WAIT_FOR_STOPPED:
            request.stopped.wait(wait_seconds)
        return True

    return handle


_kept: list[Any] = []  # the ctypes callback must outlive its registration


def install(request: StopRequest, platform: str = sys.platform) -> None:
    """Make the operating system's stop requests reach ``request`` (the main thread only).

    Every platform: the signals of ``stop_signal_names``; Windows also: the console
    control handler (``SetConsoleCtrlHandler``). A handler that cannot be registered is
    logged, not raised: the service then stops only by the signals.
    """

    def on_signal(signum: int, _frame: Any) -> None:
        request.ask(signal.Signals(signum).name)

    for name in stop_signal_names(platform):
        signal.signal(getattr(signal, name), on_signal)
    if platform == "win32":
        _register_console_handler(console_control_handler(request))


def _register_console_handler(handle: Callable[[int], bool]) -> None:  # pragma: no cover
    """Register ``handle`` with Windows (Windows only: ``ctypes.WinDLL`` exists there)."""
    try:
        routine = ctypes.WINFUNCTYPE(ctypes.c_int, ctypes.c_uint)  # type: ignore[attr-defined]
        callback = routine(lambda ctrl_type: 1 if handle(int(ctrl_type)) else 0)
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        if not kernel32.SetConsoleCtrlHandler(callback, 1):
            raise OSError(ctypes.get_last_error(), "SetConsoleCtrlHandler failed")  # type: ignore[attr-defined]
    except (OSError, AttributeError) as exc:
        log.warning("console control events will not stop the service cleanly: %s", exc)
        return
    _kept.append(callback)
