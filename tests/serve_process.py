"""``email-service serve`` as a subprocess, as in production, for tests that need one.

``serving(config)`` starts it, reads its log lines (standard error) on a thread until it
says where its status page is, yields a ``Served`` with that address and every line so
far (the list keeps growing), then stops it with SIGTERM (killed if it has not gone in
20 s). A process that printed a traceback fails the test after the stop.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

READY_LINE = "status page at "
START_SECONDS = 60.0


@dataclass
class Served:
    """A running ``serve``: its process, its status page's address, its log lines."""

    process: subprocess.Popen[str]
    url: str = ""
    stderr: list[str] = field(default_factory=list)

    @property
    def log(self) -> str:
        return "".join(self.stderr)


def _read_lines(stream: IO[str], into: list[str], ready: threading.Event) -> None:
    for line in stream:
        into.append(line)
        if READY_LINE in line:
            ready.set()
    ready.set()  # the process ended: stop waiting


@contextmanager
def serving(config: Path, start_seconds: float = START_SECONDS) -> Iterator[Served]:
    """Run ``serve`` with ``config`` until the block ends (see the module docstring)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "--config", str(config), "serve"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    served = Served(process)
    ready = threading.Event()
    assert process.stderr is not None
    reader = threading.Thread(
        target=_read_lines, args=(process.stderr, served.stderr, ready), daemon=True
    )
    reader.start()
    try:
        ready.wait(start_seconds)
        lines = served.log
        assert READY_LINE in lines, f"serve did not start:\n{lines}"
        served.url = lines.split(READY_LINE, 1)[1].split()[0].rstrip("/")
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=5)
        process.stderr.close()
    assert "Traceback" not in served.log
