"""The practice database's part of the self-test: it answers a read and takes a write.

The first run claims this incarnation in the database's ``email_service_mailbox`` row
(the practice-database side of the incarnation fence); every run then reads the
``practice`` row and writes that fence row, refused unless this incarnation still
holds it. A database that does not answer is a diagnostic, not a crash; a fence
that moved on raises ``actors.fence.StaleIncarnationError`` (the mailbox stops).
"""

from __future__ import annotations

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from actors import practice_db
from actors.fence import StaleIncarnationError
from actors.practice_schema import SINGLE_ROW_ID, email_service_mailbox, practice
from actors.selftest import SelfTestResult
from events.clock import Clock
from events.types import Diagnostic
from supervisor.discovery import error_line

DB_TIMEOUT_SECONDS = 10.0


class DatabaseSelfTest:
    """Checks one practice database for one incarnation; runs in the mailbox's thread."""

    def __init__(self, db: str, url: str, incarnation: int, server_name: str, clock: Clock) -> None:
        self._db = db
        self._url = url
        self._incarnation = incarnation
        self._server_name = server_name
        self._clock = clock
        self._engine: Engine | None = None
        self._claimed = False

    def run(self) -> SelfTestResult:
        try:
            if self._engine is None:
                self._engine = practice_db.make_engine(self._url, timeout=DB_TIMEOUT_SECONDS)
            if not self._claimed:
                practice_db.claim_incarnation(
                    self._engine, self._incarnation, self._server_name, self._clock.now()
                )
                self._claimed = True
            self._read_and_write(self._engine)
        except practice_db.StaleIncarnationError as exc:
            raise StaleIncarnationError(self._db, self._incarnation, exc.stored) from None
        except (SQLAlchemyError, practice_db.PracticeDbError, OSError) as exc:
            message = f"the practice database does not answer: {error_line(exc, self._url)}"
            return SelfTestResult(("database",), (Diagnostic("database", "error", message),))
        return SelfTestResult(("database",), ())

    def _read_and_write(self, engine: Engine) -> None:
        with engine.begin() as conn:
            practice_db.check_incarnation(conn, self._incarnation)
            conn.execute(select(practice.c.id).where(practice.c.id == SINGLE_ROW_ID)).first()
            conn.execute(
                update(email_service_mailbox)
                .where(email_service_mailbox.c.id == SINGLE_ROW_ID)
                .values(server_name=self._server_name)
            )

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
