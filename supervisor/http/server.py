"""Run the HTTP application with uvicorn in a thread of the service process.

The socket is bound here, before the thread starts, so a port that is taken is a one-line
``HttpError`` from ``start`` (the service logs it as ``ChildCrashed`` and retries with
backoff while mail goes on) and port 0 reports the port it got. The bind is exclusive
(``bind_options``): ``SO_REUSEADDR`` on Linux (a restarted service can bind while old
connections linger in TIME_WAIT; it does not let a second socket bind a port another
one listens on), ``SO_EXCLUSIVEADDRUSE`` on Windows, never ``SO_REUSEPORT``, so a second
service cannot share the port (``tests/test_http_port.py`` checks it). If the server's
thread ends while it should serve, ``on_died`` is called from that thread with the
reason. uvicorn's own signal
handlers are not installed: the service process owns SIGTERM/SIGINT.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator

import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 3.0


def bind_options(platform: str = sys.platform) -> tuple[tuple[str, int], ...]:
    """The ``SOL_SOCKET`` options (by name) set before binding on ``platform``. Pure.

    Linux and macOS: ``SO_REUSEADDR``, which there lets a restarted service bind while
    old connections linger in TIME_WAIT but never a port another socket listens on.
    Windows: ``SO_REUSEADDR`` means the opposite there (a second socket may bind a port
    in use, and take its connections), so never it: ``SO_EXCLUSIVEADDRUSE`` instead,
    which also keeps any other program from binding the port while the service has it.
    """
    if platform == "win32":
        return (("SO_EXCLUSIVEADDRUSE", 1),)
    return (("SO_REUSEADDR", 1),)


class HttpError(Exception):
    """The HTTP interface could not start; the message says why, in one line."""


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the process's own handlers stay in charge


class HttpServer:
    """The status page and API on ``host:port``, served until ``stop``."""

    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        on_died: Callable[[str], None] = lambda _error: None,
    ) -> None:
        self._app = app
        self._on_died = on_died
        self._host = host
        self._port = port
        self._server: _QuietServer | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        assert self._socket is not None, "not started"
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        """The page's address, for people."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        """Bind and serve; raise ``HttpError`` when the address cannot be used."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            for option, value in bind_options():
                sock.setsockopt(socket.SOL_SOCKET, getattr(socket, option), value)
            sock.bind((self._host, self._port))
        except OSError as exc:
            sock.close()
            raise HttpError(
                f"cannot listen on {self._host}:{self._port}: {exc.strerror or exc} "
                "(see http.listen)"
            ) from None
        sock.listen(128)
        self._socket = sock
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
            lifespan="off",
        )
        self._server = _QuietServer(config)
        self._thread = threading.Thread(
            target=self._serve, args=(self._server, sock), name="http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise HttpError(f"the HTTP interface did not start on {self.url}")
            time.sleep(0.01)

    def _serve(self, server: _QuietServer, sock: socket.socket) -> None:
        """The thread: serve until told to stop; report any other end."""
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # uvicorn ends a failed start with SystemExit
            error = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        else:
            error = "the server stopped serving by itself"
        if server.should_exit or not server.started:
            return  # stopped on purpose, or never started: start() raised HttpError
        log.error("the HTTP interface on %s stopped: %s", self.url, error)
        self._on_died(error)

    def stop(self) -> None:
        """Stop serving (open requests get a moment to finish) and release the port."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_SECONDS)
            if self._thread.is_alive():
                assert self._server is not None
                self._server.force_exit = True
                self._thread.join(STOP_TIMEOUT_SECONDS)
        if self._socket is not None:
            self._socket.close()
