"""A local SMTP server that keeps every message it receives as a file (the demo's sink)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class _Keep:
    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._numbers = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        path = self._folder / f"{next(self._numbers):06d}.eml"
        path.write_bytes(envelope.original_content or envelope.content)
        return "250 OK: kept"


class SmtpSink:
    """An SMTP server on 127.0.0.1 that accepts everything and keeps it in ``folder``."""

    def __init__(self, folder: Path, port: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._controller = Controller(_Keep(folder), hostname="127.0.0.1", port=port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
