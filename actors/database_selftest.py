"""The practice database's part of the self-test: it answers a read and takes a write.

The first run claims this incarnation in the database's ``email_service_mailbox`` row
(the practice-database side of the incarnation fence); every run then writes that
fence row with a compare-and-swap that only the incarnation holding the fence passes:
one statement that reads (the row, in its ``WHERE``) and writes. With ``write=False`` it
only claims: the fenced check-in written after the self-test is then the read and the
write. A database that does not answer is a diagnostic, not a crash; a fence that moved
on raises
``actors.fence.StaleIncarnationError`` (the mailbox stops).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, bindparam, update
from sqlalchemy.exc import SQLAlchemyError

from actors import practice_db, schema_upgrade
from actors.fence import StaleIncarnationError
from actors.practice_schema import SINGLE_ROW_ID, email_service_mailbox
from actors.selftest import SelfTestResult
from actors.server_budget import ServerFullError
from actors.statements import constant
from events.clock import Clock
from events.types import Diagnostic
from supervisor.discovery import error_line

DB_TIMEOUT_SECONDS = 10.0

_FENCE = email_service_mailbox

# Built once: every mailbox runs them at every check-in.
_TAKE_A_WRITE = constant(
    "selftest.take_a_write",
    update(_FENCE)
    .where(_FENCE.c.id == SINGLE_ROW_ID, _FENCE.c.incarnation == bindparam("holder"))
    .values(server_name=bindparam("server")),
    params={"holder": 7, "server": "PRACTICE-SRV (host pid 1)"},
)


class DatabaseSelfTest:
    """Checks one practice database for one incarnation; runs in the mailbox's thread.

    ``engine`` gives the database's shared engine (``actors.engines.EngineRegistry``);
    without it the self-test makes its own from ``url`` and disposes of it in
    ``close``. ``url`` also serves to keep its password out of diagnostics.
    """

    def __init__(
        self,
        db: str,
        url: str,
        incarnation: int,
        server_name: str,
        clock: Clock,
        engine: Callable[[], Engine] | None = None,
        *,
        write: bool = True,
    ) -> None:
        self._db = db
        self._url = url
        self._incarnation = incarnation
        self._server_name = server_name
        self._clock = clock
        self._shared = engine
        self._own: Engine | None = None
        self._claimed = False
        self._write = write

    def _engine(self) -> Engine:
        if self._shared is not None:
            return self._shared()
        if self._own is None:
            self._own = practice_db.make_engine(self._url, timeout=DB_TIMEOUT_SECONDS)
        return self._own

    def run(self) -> SelfTestResult:
        try:
            engine = self._engine()
            if not self._claimed:
                practice_db.claim_incarnation(
                    engine, self._incarnation, self._server_name, self._clock.now()
                )
                # A database made by an older version gets the columns added since.
                schema_upgrade.upgrade_once(engine, self._url)
                self._claimed = True
            if self._write:
                self._read_and_write(engine)
            # write=False: the fenced check-in written after the rest of the self-test
            # (actors.checkin_writer) is this database's read and write.
        except StaleIncarnationError as exc:
            raise StaleIncarnationError(exc.incarnation, exc.stored, self._db) from None
        except ServerFullError as exc:  # the server's slots, not this database: say so
            return SelfTestResult(("database",), (Diagnostic("database", "error", str(exc)),))
        except schema_upgrade.SchemaUpgradeError as exc:  # it answers, but refuses the change
            cause = error_line(exc.__cause__ or exc, self._url)
            message = (
                f"the service cannot add the columns it needs ({', '.join(exc.columns)}):"
                f" {cause}; run `email-service db init --db {self._db}` as a database user"
                " allowed to change the tables (the owner)"
            )
            return SelfTestResult(("database",), (Diagnostic("database", "error", message),))
        except (SQLAlchemyError, practice_db.PracticeDbError, OSError) as exc:
            message = f"the practice database does not answer: {error_line(exc, self._url)}"
            return SelfTestResult(("database",), (Diagnostic("database", "error", message),))
        return SelfTestResult(("database",), ())

    def _read_and_write(self, engine: Engine) -> None:
        # One statement, which reads (the fence row, in its WHERE) and writes: the
        # check and the write cannot be split by a newer claim, and no transaction
        # needs opening around it.
        with practice_db.one_statement(engine) as conn:
            changed = conn.execute(
                _TAKE_A_WRITE,
                {"holder": self._incarnation, "server": self._server_name},
            ).rowcount
        if changed != 1:
            # Refused, or a driver that counts matched-but-unchanged rows as 0: ask.
            with engine.begin() as conn:
                practice_db.check_incarnation(conn, self._incarnation)

    def close(self) -> None:
        if self._own is not None:
            self._own.dispose()
            self._own = None
