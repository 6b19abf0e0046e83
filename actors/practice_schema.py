"""The tables the service shares with the practice software, in every practice database.

``METADATA`` holds the contract's tables (``CONTRACT.md``, "Tables in every practice
database") with exactly its column names, plus one table the service owns,
``email_service_mailbox`` (the contract lets the project add tables and columns, never drop
or rename the contract's). ``init_practice_database`` creates them for ``email-service db
init``; the service itself never creates tables (see ``docs/databases.md``).

Type choices, the same on every backend SQLAlchemy supports here:

- Times are **naive UTC** (``DateTime`` without a time zone; microseconds on MySQL/MariaDB
  and SQL Server through dialect variants). A value read back has no ``tzinfo`` and means
  UTC; ``utcnow()`` is the database server's own clock in UTC, used for server defaults,
  so rows the practice software inserts without a time get the server's UTC time.
- Free text people write or read (names, addresses, subjects) is ``Unicode``/``UnicodeText``
  (``NVARCHAR`` on SQL Server); fixed ASCII words (``folder``, ``status``, ...) and
  ``message_id`` are ``String``. Every indexed string has a length that fits MySQL's
  3072-byte and SQL Server's 900-byte index keys.
- Mail bodies and ``raw`` use the long variants on MySQL/MariaDB (``LONGTEXT``/``LONGBLOB``),
  whose plain ``TEXT``/``BLOB`` stop at 64 KiB.
- Booleans are ``Boolean`` without a CHECK constraint (``BIT`` on SQL Server, ``BOOL`` on
  PostgreSQL, an integer 0/1 elsewhere).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Insert,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    String,
    Table,
    Unicode,
    UnicodeText,
    false,
    insert,
    select,
    text,
    true,
)
from sqlalchemy.dialects import mssql, mysql
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import conv
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeEngine

from actors.statements import statement

# Deterministic constraint and index names on every backend, so a later migration can
# name what it changes.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

METADATA = MetaData(naming_convention=NAMING_CONVENTION)
"""Every table of a practice database: the contract's seven and ``email_service_mailbox``."""

SINGLE_ROW_ID = 1
"""The ``id`` of the one row of ``practice``, ``email_settings`` and ``email_service_mailbox``."""


class utcnow(FunctionElement[Any]):  # lower case: it reads like the SQL function it renders
    """The database server's current time in UTC, as a naive timestamp.

    Rendered per dialect: ``SYSUTCDATETIME()`` on SQL Server, ``UTC_TIMESTAMP(6)`` on
    MySQL/MariaDB, ``CURRENT_TIMESTAMP AT TIME ZONE 'UTC'`` on PostgreSQL, and a
    microsecond ``strftime`` on SQLite (whose ``CURRENT_TIMESTAMP`` is UTC but whole seconds).
    Usable in queries and as a ``server_default``.
    """

    type = DateTime()
    inherit_cache = True


@compiles(utcnow)
def _utcnow_default(_element: utcnow, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


@compiles(utcnow, "sqlite")
def _utcnow_sqlite(_element: utcnow, _compiler: SQLCompiler, **_kw: Any) -> str:
    # %f is "SS.SSS"; three more zeros give the six fraction digits SQLAlchemy's SQLite
    # DateTime stores, so server-written and Python-written times sort together as text.
    return "(strftime('%Y-%m-%d %H:%M:%f000', 'now'))"


@compiles(utcnow, "postgresql")
def _utcnow_postgresql(_element: utcnow, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')"


@compiles(utcnow, "mysql")
@compiles(utcnow, "mariadb")
def _utcnow_mysql(_element: utcnow, _compiler: SQLCompiler, **_kw: Any) -> str:
    # Parenthesised: MySQL 8 accepts an expression DEFAULT only in parentheses.
    return "(UTC_TIMESTAMP(6))"


@compiles(utcnow, "mssql")
def _utcnow_mssql(_element: utcnow, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "SYSUTCDATETIME()"


class utcnow_plus(FunctionElement[Any]):
    """The database server's current UTC time plus a number of seconds (naive, like
    ``utcnow``): ``next_checkin_due_at`` computed by the server in the same statement."""

    type = DateTime()
    inherit_cache = True
    # The seconds are rendered into the SQL, so they are part of the statement's cache key
    # (without this the statement could not be cached at all, and compiling it on every
    # check-in of every database costs more than running it).
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy's own class attribute)
        *FunctionElement._traverse_internals,
        ("seconds", InternalTraversal.dp_plain_obj),
    ]

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = float(seconds)


def _millis(element: utcnow_plus) -> int:
    return round(element.seconds * 1000)


@compiles(utcnow_plus)
def _utcnow_plus_default(element: utcnow_plus, _compiler: SQLCompiler, **_kw: Any) -> str:
    return f"(CURRENT_TIMESTAMP + INTERVAL '{_millis(element)}' MILLISECOND)"


@compiles(utcnow_plus, "sqlite")
def _utcnow_plus_sqlite(element: utcnow_plus, _compiler: SQLCompiler, **_kw: Any) -> str:
    return f"(strftime('%Y-%m-%d %H:%M:%f000', 'now', '{element.seconds:+.3f} seconds'))"


@compiles(utcnow_plus, "postgresql")
def _utcnow_plus_postgresql(element: utcnow_plus, _compiler: SQLCompiler, **_kw: Any) -> str:
    return f"((CURRENT_TIMESTAMP AT TIME ZONE 'UTC') + INTERVAL '{_millis(element)} milliseconds')"


@compiles(utcnow_plus, "mysql")
@compiles(utcnow_plus, "mariadb")
def _utcnow_plus_mysql(element: utcnow_plus, _compiler: SQLCompiler, **_kw: Any) -> str:
    return f"(UTC_TIMESTAMP(6) + INTERVAL {_millis(element) * 1000} MICROSECOND)"


@compiles(utcnow_plus, "mssql")
def _utcnow_plus_mssql(element: utcnow_plus, _compiler: SQLCompiler, **_kw: Any) -> str:
    # DATEADD takes an int: milliseconds overflow past 24.8 days (a check-in history of 30
    # days), so whole seconds and the remaining milliseconds are added separately.
    seconds, millis = divmod(_millis(element), 1000)
    return f"DATEADD(second, {seconds}, DATEADD(millisecond, {millis}, SYSUTCDATETIME()))"


# --- portable types --------------------------------------------------------------------

# BIGINT identity everywhere except SQLite, where only INTEGER PRIMARY KEY autoincrements.
_Id: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")
_Ref: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")
UtcDateTime: TypeEngine[Any] = (
    DateTime(timezone=False)
    .with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    .with_variant(mssql.DATETIME2(precision=6), "mssql")  # type: ignore[no-untyped-call]
)
"""Naive UTC time with microseconds where the backend's default type has fewer."""
# SQL Server: NVARCHAR(max)/VARBINARY(max) named outright, since the dialect falls back to
# the deprecated NTEXT/IMAGE when it has not yet seen the server's version.
_Text: TypeEngine[str] = UnicodeText().with_variant(mssql.NVARCHAR(), "mssql")
_LongText: TypeEngine[str] = _Text.with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
_Raw: TypeEngine[bytes] = (
    LargeBinary()
    .with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
    .with_variant(mssql.VARBINARY(), "mssql")  # type: ignore[no-untyped-call]
)
_Name = Unicode(200)  # a person's, practice's or server's name
_Address = Unicode(320)  # RFC 5321's longest address: 64 + "@" + 255
_Host = Unicode(255)
_Secret = Unicode(500)
_Word = String(20)  # one of a few ASCII words: folder, status, level, ...

# utf8mb4 so every name fits on MySQL/MariaDB; ignored by every other dialect.
_MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def _int(value: int) -> Any:
    return text(str(value))


practice = Table(
    "practice",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("practice_name", _Name, nullable=False),
    Column("registered_server", _Name, nullable=True),
    **_MYSQL,
)

email_settings = Table(
    "email_settings",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("sending_enabled", Boolean, nullable=False, server_default=true()),
    Column("send_window", Unicode(200), nullable=False, server_default=""),
    Column("max_per_minute", Integer, nullable=False, server_default=_int(30)),
    Column("from_address", _Address),
    Column("from_name", _Name),
    Column("smtp_host", _Host),
    Column("smtp_port", Integer, nullable=False, server_default=_int(587)),
    Column("smtp_security", _Word, nullable=False, server_default="starttls"),
    Column("smtp_username", _Address),
    Column("smtp_password", _Secret),
    Column("imap_enabled", Boolean, nullable=False, server_default=false()),
    Column("imap_host", _Host),
    Column("imap_port", Integer, nullable=False, server_default=_int(993)),
    Column("imap_security", _Word, nullable=False, server_default="tls"),
    Column("imap_username", _Address),
    Column("imap_password", _Secret),
    Column("imap_folder", Unicode(255), nullable=False, server_default="INBOX"),
    Column("imap_after_import", Unicode(300), nullable=False, server_default="keep"),
    Column("sms_enabled", Boolean, nullable=False, server_default=false()),
    Column("sms_gateway", Unicode(1000)),
    # Service additions for the HTTP SMS gateway (the contract allows added columns):
    # its account name and secret, the sender number, and the region numbers without a
    # country code belong to (ISO 3166 alpha-2, e.g. "GB"; empty: numbers must carry one).
    Column("sms_username", _Address),
    Column("sms_password", _Secret),
    Column("sms_from", Unicode(50)),
    Column("sms_region", String(2), nullable=False, server_default=""),
    # Modern sign-in (CONTRACT.md, "Modern sign-in (OAuth 2.0)"). Nullable, so an older
    # practice database gets them from ``db init``/the start-up upgrade; NULL reads as the
    # default (``password``; no OAuth). Client secrets (a Google service account's key is a
    # JSON document of about 2.3 KB) and refresh tokens are long: TEXT, never cut.
    Column("smtp_auth", _Word),
    Column("imap_auth", _Word),
    Column("oauth_provider", _Word),
    Column("oauth_flow", _Word),
    Column("oauth_tenant", Unicode(255)),
    Column("oauth_client_id", Unicode(255)),
    Column("oauth_client_secret", _LongText),
    Column("oauth_refresh_token", _LongText),
    Column("oauth_account", _Address),
    Column("oauth_expires_at", UtcDateTime),
    **_MYSQL,
)

email_messages = Table(
    "email_messages",
    METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("folder", _Word, nullable=False, server_default="outbox"),
    Column("channel", _Word, nullable=False, server_default="email"),
    Column("status", _Word, nullable=False, server_default="queued"),
    # Nullable: the practice software queues rows; the service fixes the Message-ID
    # before the first attempt. 255 ASCII characters keep the unique index small.
    Column("message_id", String(255)),
    Column("from_addr", Unicode(1000)),
    Column("to_addrs", _Text),
    Column("cc_addrs", _Text),
    Column("subject", _Text),
    Column("body_text", _LongText),
    Column("body_html", _LongText),
    Column("patient_id", _Ref),
    Column("actioned_at", UtcDateTime),
    Column("actioned_by", _Name),
    Column("attempts", Integer, nullable=False, server_default=_int(0)),
    Column("next_attempt_at", UtcDateTime),
    Column("last_error", _Text),
    Column("created_at", UtcDateTime, nullable=False, server_default=utcnow()),
    Column("sent_at", UtcDateTime),
    Column("received_at", UtcDateTime),
    # IMAP UIDs and UIDVALIDITY are unsigned 32-bit: BIGINT holds every value.
    Column("imap_uidvalidity", BigInteger),
    Column("imap_uid", BigInteger),
    Column("deleted_from", _Word),
    # Service-owned additions (the contract allows columns, never drops or renames):
    # the incarnation that claimed the row for sending (the fence for outbox writes),
    Column("claimed_incarnation", BigInteger),
    # the moment the final "." of DATA went on the wire (set durably before it is sent:
    # a row in "sending" with wire_at set may have reached the server, DESIGN decision 7),
    Column("wire_at", UtcDateTime),
    # and the recipients the server refused while accepting the others,
    Column("refused_recipients", _Text),
    # Inbox rows: the SHA-256 (hex) of the message as fetched, what de-duplicates a
    # re-import (a changed UIDVALIDITY) by content rather than by a Message-ID header
    # any sender can reuse.
    Column("raw_sha256", String(64)),
    # True from the commit of an outcome (sent, failed, retried, received) until its
    # event is durable in the service's log; a start appends the events still owed
    # (actors/mail/outcome_events.py). NULL: nothing owed.
    Column("event_pending", Boolean),
    # and what became of each recipient (JSON, docs/mail.md): accepted, deferred (4xx:
    # tried again, the others are not sent to twice) or refused for good.
    Column("recipient_status", _Text),
    # Why a queued row waits for its next_attempt_at: "server" when its last attempt
    # failed because the server could not be used (no connection, log-in refused, the
    # connection lost: the whole service's fault), "message" when the server answered
    # for this message (a 4xx); NULL otherwise. A person's Restart makes the "server"
    # ones due at once (actors/mail/outbox.py, retry_now).
    Column("retry_cause", _Word),
    # The message as received or to be sent, last: a SQLite row whose last column is a
    # zeroblob is built without the blob in memory, so a large message is written in
    # pieces (actors/mail/raw_blob.py). Tables made before keep it where it was.
    Column("raw", _Raw),
    **_MYSQL,
)
# Unique indexes rather than UNIQUE constraints: SQL Server counts NULLs as equal in a
# UNIQUE constraint, and most rows have no Message-ID yet or no IMAP UID. The filtered
# index (mssql_where) allows many NULLs there; elsewhere NULLs are distinct anyway.
Index(
    "uq_email_messages_message_id",
    email_messages.c.message_id,
    unique=True,
    mssql_where=email_messages.c.message_id.is_not(None),
)
Index(
    "uq_email_messages_imap_uidvalidity_imap_uid",
    email_messages.c.imap_uidvalidity,
    email_messages.c.imap_uid,
    unique=True,
    mssql_where=email_messages.c.imap_uid.is_not(None),
)
Index(
    "ix_email_messages_outbox",  # the sender's query: folder='outbox', status, due time
    email_messages.c.folder,
    email_messages.c.status,
    email_messages.c.next_attempt_at,
)
Index("ix_email_messages_patient_id", email_messages.c.patient_id)
Index("ix_email_messages_raw_sha256", email_messages.c.raw_sha256)
Index("ix_email_messages_event_pending", email_messages.c.event_pending)

patients = Table(
    "patients",
    METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("email", _Address),
    Column("mobile_phone", Unicode(50)),
    **_MYSQL,
)
Index("ix_patients_email", patients.c.email)

email_service_checkins = Table(
    "email_service_checkins",
    METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("checked_in_at", UtcDateTime, nullable=False, server_default=utcnow()),
    Column("next_checkin_due_at", UtcDateTime, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("summary", _Text),
    Column("server_name", _Name, nullable=False),
    Column("service_version", String(50), nullable=False),
    # Service-owned addition: which start of the service wrote it (``host pid N start W``,
    # ``supervisor.instance_lock.service_instance``); NULL from older versions. The
    # contract's ``server_name`` stays the ``server_id``, so a restart is not two services.
    Column("service_instance", Unicode(100)),
    **_MYSQL,
)
Index("ix_email_service_checkins_checked_in_at", email_service_checkins.c.checked_in_at)

email_service_diagnostics = Table(
    "email_service_diagnostics",
    METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column(
        "checkin_id",
        _Ref,
        # Deleting old check-ins (retention) takes their diagnostic lines with them.
        ForeignKey("email_service_checkins.id", ondelete="CASCADE"),
        nullable=True,
    ),
    Column("logged_at", UtcDateTime, nullable=False, server_default=utcnow()),
    Column("level", _Word, nullable=False),
    Column("component", _Word, nullable=False),
    Column("message", _Text, nullable=False),
    **_MYSQL,
)
Index("ix_email_service_diagnostics_checkin_id", email_service_diagnostics.c.checkin_id)

email_service_commands = Table(
    "email_service_commands",
    METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("command", _Word, nullable=False),
    Column("requested_at", UtcDateTime, nullable=False, server_default=utcnow()),
    Column("requested_by", _Name),
    Column("handled_at", UtcDateTime),
    Column("outcome", _Text),
    **_MYSQL,
)
Index("ix_email_service_commands_handled_at", email_service_commands.c.handled_at)

email_service_mailbox = Table(
    "email_service_mailbox",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("incarnation", BigInteger, nullable=False),
    Column("server_name", _Name, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    comment="Owned by the email service: the incarnation allowed to write (a fence).",
    **_MYSQL,
)
"""Service-owned, one row (``id`` = 1): the mailbox incarnation allowed to write here.

An addition the contract allows. ``actors.practice_db.claim_incarnation`` raises the number
when a mailbox starts; every later write checks it (``check_incarnation``), so a hung
older incarnation can never write again. Created by ``db init``; for an existing practice
database that lacks it, the first claim creates it (see ``actors.practice_db``).
"""

email_service_inbox = Table(
    "email_service_inbox",
    METADATA,
    Column("folder", Unicode(255), primary_key=True),
    Column("uidvalidity", BigInteger),
    Column("last_uid", BigInteger, nullable=False, server_default=_int(0)),
    Column("incarnation", BigInteger, nullable=False, server_default=_int(0)),
    Column("updated_at", UtcDateTime),
    # Poison tracking: the UID being imported and how many incarnations died on it.
    Column("pending_uid", BigInteger),
    Column("pending_attempts", Integer, nullable=False, server_default=_int(0)),
    comment="Owned by the email service: how far the IMAP import got, per folder.",
    **_MYSQL,
)
"""Service-owned, one row per IMAP folder: ``(uidvalidity, last_uid)`` advanced in the same
transaction as the rows it imported (DESIGN decision 7), plus what is needed to park a
message that keeps crashing the importer."""

CONTRACT_TABLES: tuple[str, ...] = (
    "practice",
    "email_settings",
    "email_messages",
    "patients",
    "email_service_checkins",
    "email_service_diagnostics",
    "email_service_commands",
)
"""The contract's tables, by name, in creation order."""

SERVICE_TABLES: tuple[str, ...] = ("email_service_mailbox", "email_service_inbox")
"""Tables only the service uses: additions the contract allows."""


def init_practice_database(
    url: str, *, practice_name: str, registered_server: str | None = None
) -> None:
    """Make the database at ``url`` a practice database: create every table of ``METADATA``
    that is missing, then the ``practice`` row (id 1) and the default ``email_settings`` row
    (id 1) if they are absent.

    Idempotent: existing rows are left exactly as they are (an existing ``practice`` row
    keeps its name and registered server); an existing table made by an older version
    gets the columns added since (``actors.schema_upgrade``), nothing else. All or
    nothing: when any step fails, the tables this call created are dropped again
    (MariaDB's DDL is not transactional) and a SQLite file it created is removed, so a
    failed init never leaves a half-built practice database behind. A SQLite file it
    creates is readable and writable by its owner only (0600: it will hold mail and
    settings) and in WAL mode; an existing file keeps its journal mode. Opens only the
    database named in ``url`` (a SQLite URL creates the file; its folder must exist) and
    disposes of the engine before returning. Raises SQLAlchemy's errors
    (``OperationalError`` for an unreachable server, ``ArgumentError`` for a URL it cannot
    use) as they are.
    """
    # Imported here: practice_db imports this module for its tables.
    from actors.practice_db import make_engine, use_wal
    from actors.schema_upgrade import add_missing_columns

    new_file = _create_private_sqlite_file(url)
    engine = make_engine(url)
    created: list[Table] = []
    try:
        if new_file is not None:
            use_wal(url)  # the service's own file; one it was given keeps its journal mode
        with engine.connect() as conn:
            database = conn.dialect.name, str(engine.url.database or "")
            for table in METADATA.sorted_tables:
                if conn.dialect.has_table(conn, table.name):
                    continue
                made = _table_for(table, *database)
                made.create(conn)
                conn.commit()
                created.append(made)
        add_missing_columns(engine)  # tables an older version made lack newer columns
        with engine.begin() as conn:
            if conn.execute(_has_row("practice")).first() is None:
                conn.execute(_first_practice_row(practice_name, registered_server))
            if conn.execute(_has_row("email_settings")).first() is None:
                conn.execute(_first_settings_row())
    except BaseException:
        _undo(engine, created)
        engine.dispose()
        if new_file is not None:
            for path in (new_file, *(Path(f"{new_file}{end}") for end in ("-wal", "-shm"))):
                path.unlink(missing_ok=True)
        raise
    finally:
        engine.dispose()


@statement("init.has_row", "practice")
def _has_row(table: str) -> Select[Any]:
    """Whether ``practice`` or ``email_settings`` has its row (id 1)."""
    t = METADATA.tables[table]
    return select(t.c.id).where(t.c.id == SINGLE_ROW_ID)


@statement("init.practice_row", "Riverside Dental", "PRACTICE-SRV")
def _first_practice_row(practice_name: str, registered_server: str | None) -> Insert:
    return insert(practice).values(
        id=SINGLE_ROW_ID, practice_name=practice_name, registered_server=registered_server
    )


@statement("init.settings_row")
def _first_settings_row() -> Insert:
    """The default ``email_settings`` row."""
    return insert(email_settings).values(id=SINGLE_ROW_ID)


def _create_private_sqlite_file(url: str) -> Path | None:
    """Create the SQLite file of ``url`` with mode 0600 when it does not exist yet (SQLite
    would create it with the process's umask, usually readable by everyone); return it, or
    None when there is nothing to create."""
    parsed = make_url(url)
    path = parsed.database or ""
    if (
        parsed.get_backend_name() != "sqlite"
        or path in ("", ":memory:")
        or path.startswith("file:")
    ):
        return None
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return None
    return Path(path)


def _table_for(table: Table, dialect: str, database: str) -> Table:
    """``table`` as created in ``database``: on MariaDB/MySQL, whose InnoDB wants foreign
    key names unique per server in a way that can make two databases differing only in
    case collide, the foreign key's name carries a digest of the exact database name."""
    if dialect not in ("mysql", "mariadb") or not table.foreign_key_constraints:
        return table
    copies = MetaData()
    for needed in METADATA.sorted_tables:  # the referred tables, for the copy's keys
        needed.to_metadata(copies)
    copy = copies.tables[table.name]
    digest = hashlib.sha256(database.encode("utf-8")).hexdigest()[:12]
    for constraint in copy.foreign_key_constraints:
        column = constraint.column_keys[0]
        constraint.name = conv(f"fk_{table.name}_{column}_{digest}"[:64])
    return copy


def _undo(engine: Engine, created: list[Table]) -> None:
    """Drop the tables a failed init created, newest first (best effort: the original
    error is the one reported)."""
    for table in reversed(created):
        with contextlib.suppress(Exception), engine.begin() as conn:
            table.drop(conn, checkfirst=True)
