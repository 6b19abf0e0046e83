"""A local SMTP server that keeps every message it receives as a file (the demo's sink).

With ``users`` it requires a log-in (AUTH PLAIN or LOGIN, offered without TLS: a local
server for the demo only) and refuses a wrong password with ``535``, as a provider does.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class _Keep:
    def __init__(self, folder: Path) -> None:
        self._folder = folder
        # Numbering goes on after the files already kept, so a restarted demo keeps them.
        kept = [int(p.stem) for p in folder.glob("*.eml") if p.stem.isdigit()]
        self._numbers = itertools.count(max(kept, default=0) + 1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        path = self._folder / f"{next(self._numbers):06d}.eml"
        path.write_bytes(envelope.original_content or envelope.content)
        return "250 OK: kept"


class SmtpSink:
    """An SMTP server on 127.0.0.1 that accepts everything and keeps it in ``folder``;
    with ``users`` (login -> password), only from a client that logged in."""

    def __init__(self, folder: Path, port: int, users: Mapping[str, str] | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = port
        self._users = dict(users or {})
        options: dict[str, Any] = {}
        if users is not None:
            options = {
                "authenticator": self._authenticate,
                "auth_required": True,
                "auth_require_tls": False,
            }
        self._controller = Controller(_Keep(folder), hostname="127.0.0.1", port=port, **options)

    def _authenticate(
        self, _server: Any, _session: Any, _envelope: Any, _mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode()
            if login in self._users and self._users[login] == auth_data.password.decode():
                return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
