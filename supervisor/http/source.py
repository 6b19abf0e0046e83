"""Where the HTTP interface gets what it shows: the databases, their status, the tree.

``StatusSource`` is what the routes need; ``PracticeStatusSource`` implements it the way a
workstation sees things: the eligible databases as discovery finds them, each one's
status and diagnostic log from its own check-in tables, restart requests as rows in its
``email_service_commands``. Only ``tree_up`` and the metrics come from the process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Protocol

from sqlalchemy import select

from actors import commands_table, practice_db
from actors.checkins_table import DiagnosticRow
from actors.practice_schema import email_service_commands
from actors.server_budget import ServerBudgets
from supervisor import discovery
from supervisor.workstation_view import DatabaseStatus, read_diagnostics, read_status


class UnknownDatabaseError(LookupError):
    """The name is not an eligible practice database on the server."""


class StatusSource(Protocol):
    """What the routes read and do."""

    def names(self) -> Sequence[str]:
        """The eligible practice databases, sorted."""
        ...

    def statuses(self) -> Sequence[DatabaseStatus]:
        """Each eligible database's status."""
        ...

    def diagnostics(self, name: str) -> Sequence[DiagnosticRow]:
        """The diagnostic log of one database; ``UnknownDatabaseError`` for a stranger."""
        ...

    def request_restart(self, name: str, requested_by: str) -> tuple[int, bool]:
        """Queue a restart command; return ``(command id, coalesced)``.

        ``coalesced`` is True when an unhandled restart for that database was already
        waiting: its id is returned and no new row is written.
        """
        ...

    def tree_up(self) -> bool:
        """Whether the supervision tree answers."""
        ...

    def metrics_text(self) -> str:
        """Prometheus exposition text of the process's counters."""
        ...


class PracticeStatusSource:
    """``StatusSource`` over a database server, with a short cache of the database list."""

    def __init__(
        self,
        server_url: str,
        *,
        server_id: str,
        genuine_server_check: bool,
        grace: timedelta,
        tree_up: Callable[[], bool],
        metrics_text: Callable[[], str],
        list_seconds: float = 10.0,
        budgets: ServerBudgets | None = None,
    ) -> None:
        self._server_url = server_url
        self._server_id = server_id
        self._genuine = genuine_server_check
        self._grace = grace
        self._tree_up = tree_up
        self._metrics_text = metrics_text
        self._list_seconds = list_seconds
        self._lock = threading.Lock()
        self._listed_at = -1e18
        self._urls: dict[str, str] = {}
        self._budgets = budgets  # the serving process's: the page's reads fit its budget

    def _eligible(self) -> dict[str, str]:
        with self._lock:
            if time.monotonic() - self._listed_at >= self._list_seconds:
                infos = discovery.discover(
                    self._server_url,
                    server_id=self._server_id,
                    genuine_server_check=self._genuine,
                    budgets=self._budgets,
                )
                self._urls = {i.name: i.url for i in infos if i.eligibility.eligible}
                self._listed_at = time.monotonic()
            return dict(self._urls)

    def _url(self, name: str) -> str:
        urls = self._eligible()
        if name not in urls:
            raise UnknownDatabaseError(name)
        return urls[name]

    def names(self) -> Sequence[str]:
        return sorted(self._eligible())

    def statuses(self) -> Sequence[DatabaseStatus]:
        return [
            read_status(n, u, self._grace, budgets=self._budgets)
            for n, u in sorted(self._eligible().items())
        ]

    def diagnostics(self, name: str) -> Sequence[DiagnosticRow]:
        return read_diagnostics(self._url(name), budgets=self._budgets)

    def request_restart(self, name: str, requested_by: str) -> tuple[int, bool]:
        url = self._url(name)
        budget = None if self._budgets is None else self._budgets.for_url(url)
        engine = practice_db.make_engine(url, timeout=10.0, pooled=False, budget=budget)
        try:
            with engine.connect() as conn:
                waiting = conn.execute(
                    select(email_service_commands.c.id)
                    .where(
                        email_service_commands.c.handled_at.is_(None),
                        email_service_commands.c.command == commands_table.RESTART,
                    )
                    .order_by(email_service_commands.c.id)
                    .limit(1)
                ).scalar_one_or_none()
            if waiting is not None:
                return int(waiting), True
            return commands_table.request_restart(engine, requested_by), False
        finally:
            engine.dispose()

    def tree_up(self) -> bool:
        return self._tree_up()

    def metrics_text(self) -> str:
        return self._metrics_text()
