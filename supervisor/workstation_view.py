"""What a workstation sees of one practice database, read from that database's own tables.

The command line (`status`, `diagnostics`) and the HTTP interface read through here. They
read only what a workstation can read (the check-in tables and the database server's
clock), never the service's memory, so they tell the truth when the service process is down.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from actors import checkins_table, practice_db
from actors.checkins_table import DiagnosticRow
from actors.server_budget import ServerBudgets
from supervisor.discovery import error_line
from supervisor.status_rule import DatabaseStatus, Status, status_of

READ_TIMEOUT_SECONDS = 10.0

__all__ = ["DatabaseStatus", "read_diagnostics", "read_status"]


def _engine(url: str, budgets: ServerBudgets | None) -> Engine:
    budget = None if budgets is None else budgets.for_url(url)
    return practice_db.make_engine(url, timeout=READ_TIMEOUT_SECONDS, pooled=False, budget=budget)


def read_status(
    name: str, url: str, grace: timedelta, *, budgets: ServerBudgets | None = None
) -> DatabaseStatus:
    """Return the status of the practice database at ``url``.

    A database that does not answer is "not available", with a tooltip that says so: a
    workstation that cannot read its database cannot see check-ins either. ``budgets``:
    the serving process's connection budget (the status page), which the read fits in.
    """
    engine = _engine(url, budgets)
    try:
        with engine.connect() as conn:
            now = checkins_table.server_now(conn)
            newest = checkins_table.newest_checkins(conn)
    except SQLAlchemyError as exc:
        tooltip = f"The practice database does not answer: {error_line(exc, url)}"
        return DatabaseStatus(name, Status("not_available", tooltip, None))
    finally:
        engine.dispose()
    return DatabaseStatus(name, status_of(newest, now, grace))


def read_diagnostics(url: str, *, budgets: ServerBudgets | None = None) -> list[DiagnosticRow]:
    """Return the diagnostic log a workstation shows on click (the newest failing check-in's
    lines, then those of the check-ins since: ``checkins_table.diagnostic_log``).

    Raises SQLAlchemy's error when the database does not answer.
    """
    engine = _engine(url, budgets)
    try:
        with engine.connect() as conn:
            lines = checkins_table.diagnostic_log(conn)
            newest = checkins_table.newest_checkins(conn)
            now = checkins_table.server_now(conn)
    finally:
        engine.dispose()
    servers = status_of(newest, now, timedelta(0)).two_services
    if servers:
        # The contract's rule: two services checking in within one interval is a fault
        # of its own, whatever each one's check-ins say; it heads the log.
        message = (
            f"Two email services are checking in to this database: {' and '.join(servers)}. "
            "Only one server may serve a practice database: stop the service on the other "
            "server, or turn on the Genuine Server Check on both."
        )
        lines.insert(0, DiagnosticRow(newest[0].checked_in_at, "error", "service", message))
    return lines
