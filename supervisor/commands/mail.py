"""``email-service mail``: look after one practice database's four folders.

``list``, ``show``, ``move`` (to ``deleted``, remembering ``deleted_from``), ``restore``,
``action`` (link a message to a patient, with who and when) and ``retry-failed`` (failed
outbox rows back in the queue). Every subcommand takes ``--db NAME``, found on
``databases.server_url`` the way ``login-check`` finds it (any practice database, eligible
or not), and ``--json``. ``docs/mail.md`` is the operator's version.

Writes are single statements guarded by the row's current state (compare-and-swap), so a
change races safely with the running service: a row the service is sending is never moved,
and a row that changed in between is reported instead of overwritten. Times written here
(``actioned_at``) come from the database server's clock.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    Update,
    func,
    inspect,
    select,
    type_coerce,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.sqltypes import NullType

from actors.mail.outbox_row import parse_time
from actors.practice_db import make_engine
from actors.practice_schema import email_messages, patients, utcnow
from actors.statements import constant, statement
from config import Settings
from supervisor import exit_codes
from supervisor.commands import send_test
from supervisor.commands.common import CliError, print_json, print_table, printable
from supervisor.commands.databases import add_timeout, practice_database
from supervisor.discovery import error_line
from supervisor.human_time import local_text

FOLDERS = ("inbox", "outbox", "sent", "deleted")
"""The four folders of ``email_messages.folder``."""

STATUSES = ("queued", "sending", "sent", "failed", "received")
"""The values of ``email_messages.status``."""

DEFAULT_LIMIT = 50
MAX_NAME = 200  # email_messages.actioned_by holds 200 characters

_m = email_messages.c

TIME_COLUMNS = frozenset(
    {"actioned_at", "next_attempt_at", "created_at", "sent_at", "received_at", "wire_at"}
)
"""The ``email_messages`` times: practice software may write any text in them (SQLite keeps
it), so they are read as stored and made sense of by ``_time``."""

LIST_COLUMNS = (
    "id",
    "folder",
    "channel",
    "status",
    "message_id",
    "from_addr",
    "to_addrs",
    "cc_addrs",
    "subject",
    "patient_id",
    "actioned_by",
    "actioned_at",
    "attempts",
    "next_attempt_at",
    "last_error",
    "created_at",
    "sent_at",
    "received_at",
    "deleted_from",
)
"""The keys of each ``list --json`` object: ``email_messages`` columns, bodies left out."""

SHOW_COLUMNS = (
    *LIST_COLUMNS,
    "body_text",
    "body_html",
    "imap_uidvalidity",
    "imap_uid",
    "wire_at",
    "refused_recipients",
)
"""The keys of ``show --json`` (plus ``raw_size``, the length of ``raw`` in bytes or null)."""


# --- the command line --------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add the ``mail`` command and its subcommands."""
    parser = subparsers.add_parser(
        "mail",
        help="look after the four folders: list, show, move, restore, action, retry-failed, "
        "send-test",
        description="Look after one practice database's mail (the email_messages table): "
        "list a folder, show a message, move it to deleted and back, link it to a patient, "
        "and put failed outbox messages back in the queue. --db NAME is the database's "
        "name on databases.server_url, as `email-service databases` lists it. See "
        "docs/mail.md.",
    )
    sub = parser.add_subparsers(dest="mail_command", required=True, metavar="SUBCOMMAND")

    list_ = sub.add_parser(
        "list",
        help="list one folder, newest first",
        description="List the messages of one folder, newest first (the order they were "
        "added). For the outbox, also count its messages by status, failed ones first. "
        "--json prints one object per message with the keys " + ", ".join(LIST_COLUMNS) + ".",
    )
    _common(list_)
    list_.add_argument(
        "--folder", choices=FOLDERS, default="inbox", help="the folder to list (inbox)"
    )
    list_.add_argument("--status", choices=STATUSES, help="only messages with this status")
    list_.add_argument(
        "--limit",
        type=_limit,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"at most N messages ({DEFAULT_LIMIT}); 0 lists them all",
    )
    list_.set_defaults(handler=run_list)

    show = sub.add_parser(
        "show",
        help="show one message",
        description="Show one message: its fields, where it is, what happened to it, and its "
        "text. --raw prints the message exactly as it was received or will be sent (when the "
        "row holds one). --json prints [{...}] with the keys " + ", ".join(SHOW_COLUMNS) + " "
        "and raw_size.",
    )
    _common(show)
    show.add_argument("id", type=_message_id, metavar="ID", help="the message's id")
    show.add_argument("--raw", action="store_true", help="print the raw message (RFC 5322)")
    show.set_defaults(handler=run_show)

    move = sub.add_parser(
        "move",
        help="move a message to deleted (remembering where it was)",
        description="Move a message to the deleted folder; deleted_from remembers its folder "
        "so that `mail restore` can put it back. A queued outbox message that is moved is not "
        "sent. A message the service is sending right now (status sending) cannot be moved.",
    )
    _common(move)
    move.add_argument("id", type=_message_id, metavar="ID", help="the message's id")
    move.add_argument(
        "--to", choices=("deleted",), required=True, help="the folder to move it to: deleted"
    )
    move.set_defaults(handler=run_move)

    restore = sub.add_parser(
        "restore",
        help="put a deleted message back where it was",
        description="Move a message from deleted back to the folder it was deleted from "
        "(deleted_from), which is then cleared. A queued outbox message restored to the "
        "outbox will be sent. --to names the folder for a message that does not remember "
        "one (deleted by other software).",
    )
    _common(restore)
    restore.add_argument("id", type=_message_id, metavar="ID", help="the message's id")
    restore.add_argument(
        "--to",
        choices=("inbox", "outbox", "sent"),
        help="the folder, when deleted_from is empty (default: deleted_from)",
    )
    restore.set_defaults(handler=run_restore)

    action = sub.add_parser(
        "action",
        help="link a message to a patient, saying who did it",
        description="Set the message's patient_id, actioned_by and actioned_at (the "
        "database server's current time). When the practice database's patients table "
        "lists patients, PATIENT_ID must be one of them; an empty patients table (the "
        "practice software does not share its patients) accepts any id.",
    )
    _common(action)
    action.add_argument("id", type=_message_id, metavar="ID", help="the message's id")
    action.add_argument(
        "--patient", type=_patient_id, required=True, metavar="PATIENT_ID", help="patients.id"
    )
    action.add_argument(
        "--by", type=_name, required=True, metavar="NAME", help="who actioned it (actioned_by)"
    )
    action.set_defaults(handler=run_action)

    retry = sub.add_parser(
        "retry-failed",
        help="put failed outbox messages back in the queue",
        description="Put every failed outbox message (or only --id ID) back in the queue: "
        "status queued, attempts 0, next_attempt_at empty, so the service sends it at its "
        "next pass. last_error is kept, so you can still see why it failed, until the next "
        "attempt replaces it. Failed messages include SMS the service recorded as uncertain "
        "(the gateway may have delivered them): check before retrying those.",
    )
    _common(retry)
    retry.add_argument("--id", type=_message_id, metavar="ID", help="only this message")
    retry.set_defaults(handler=run_retry_failed)

    send_test.register(sub)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="NAME", required=True, help="the practice database")
    add_timeout(parser)
    parser.add_argument("--json", action="store_true", help="print JSON for programs")


def _positive(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what} (a whole number from 1)")
    return value


def _message_id(text: str) -> int:
    return _positive(text, "a message id")


def _patient_id(text: str) -> int:
    return _positive(text, "a patient id")


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of messages (0 for all)")
    return value


def _name(text: str) -> str:
    name = text.strip()
    if not name:
        raise argparse.ArgumentTypeError("the name must not be empty")
    if len(name) > MAX_NAME or not name.isprintable():
        raise argparse.ArgumentTypeError(
            f"the name must be at most {MAX_NAME} printable characters on one line"
        )
    return name


# --- opening the practice database -------------------------------------------------------


@contextmanager
def practice_engine(settings: Settings, name: str, timeout: float) -> Iterator[Engine]:
    """Yield an engine on the practice database ``name`` of ``databases.server_url``.

    Raises ``CliError``: ``NO_INPUT`` for a database that does not exist or is not a
    practice database, ``UNAVAILABLE`` for one that cannot be read; database errors while
    the caller uses the engine become one line (``UNAVAILABLE``) without a password.
    """
    info = practice_database(settings, name, timeout=timeout)
    engine = make_engine(info.url, timeout=timeout, pooled=False)
    try:
        yield engine
    except SQLAlchemyError as exc:
        raise CliError(
            f"cannot work on the mail of {name!r}: {error_line(exc, info.url)}",
            exit_codes.UNAVAILABLE,
        ) from None
    finally:
        engine.dispose()


def _column(name: str) -> ColumnElement[Any]:
    """The column to select: a time as the driver returns it (no SQLAlchemy conversion,
    which raises on text it does not expect), anything else as it is."""
    column = _m[name]
    return type_coerce(column, NullType()).label(name) if name in TIME_COLUMNS else column


def _read(row: Any) -> dict[str, Any]:
    """A result row as a dict, each time read leniently (``_time``)."""
    values = dict(row._mapping)
    for name in TIME_COLUMNS.intersection(values):
        values[name] = _time(values[name])
    return values


def _time(value: Any) -> datetime | str | None:
    """A stored time: a datetime (naive UTC) when it reads as one, the way the outbox reads
    it (``actors.mail.outbox_row.parse_time``: ISO 8601, day-first dates, RFC 2822, Unix
    seconds); else its text as stored, so that nothing is hidden and nothing crashes."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = parse_time(value)
    if parsed is not None:
        return parsed
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _raw_bytes(value: Any) -> bytes | None:
    """``raw`` as bytes: text written by practice software is taken as UTF-8."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8", "surrogatepass")


def _row(engine: Engine, message_id: int, columns: Sequence[str]) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(_one_row(message_id, tuple(columns))).first()
    return None if row is None else _read(row)


def _existing(engine: Engine, db: str, message_id: int, columns: Sequence[str]) -> dict[str, Any]:
    row = _row(engine, message_id, columns)
    if row is None:
        raise CliError(f"no message {message_id} in {db!r}", exit_codes.NO_INPUT)
    return row


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def _when(value: datetime | str | None) -> str:
    """A time for people: local time, or the stored text that is not one (escaped by the
    table)."""
    return local_text(value) if isinstance(value, datetime) or value is None else value


def _cut(text: str | None, width: int) -> str:
    one_line = " ".join((text or "").split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


# --- the subcommands ---------------------------------------------------------------------


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    query = _listing(args.folder, args.status or None, args.limit or None)
    counts_query = _status_counts(args.folder)
    with practice_engine(settings, args.db, args.timeout) as engine, engine.connect() as conn:
        rows = [_read(r) for r in conn.execute(query)]
        counts = {str(status): int(n) for status, n in conn.execute(counts_query)}
    if args.json:
        print_json([_jsonable(r) for r in rows])
        return exit_codes.OK
    total = sum(counts.values())
    if not rows:
        print(
            f"No messages in {args.folder} of {args.db!r}"
            + (f" with status {args.status}." if args.status else ".")
        )
    else:
        inbox = args.folder == "inbox"
        print_table(
            ["ID", "When", "Status", "Channel", "From" if inbox else "To", "Subject", "Patient"],
            [
                [
                    r["id"],
                    _when(r["received_at"] or r["sent_at"] or r["created_at"]),
                    r["status"],
                    r["channel"],
                    _cut(r["from_addr"] if inbox else r["to_addrs"], 30),
                    _cut(r["subject"], 40),
                    r["patient_id"] or "",
                ]
                for r in rows
            ],
        )
        print(f"\n{len(rows)} of {total} message(s) in {args.folder} of {args.db!r}.")
    if args.folder == "outbox":
        failed = counts.get("failed", 0)
        others = ", ".join(f"{n} {s}" for s, n in counts.items() if s != "failed")
        line = f"Outbox: {failed} failed" + (f", {others}" if others else "") + "."
        if failed:
            line += (
                f" `email-service mail retry-failed --db {shlex.quote(args.db)}` queues them again."
            )
        print(line)
    return exit_codes.OK


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    with practice_engine(settings, args.db, args.timeout) as engine:
        row = _existing(engine, args.db, args.id, SHOW_COLUMNS)
        with engine.connect() as conn:
            raw = _raw_bytes(conn.execute(_raw(args.id)).scalar())
    if args.raw:
        if raw is None:
            raise CliError(
                f"message {args.id} has no raw copy (it was queued as fields: see "
                "`mail show` without --raw)",
                exit_codes.NO_INPUT,
            )
        sys.stdout.flush()
        sys.stdout.buffer.write(raw)
        sys.stdout.buffer.flush()
        return exit_codes.OK
    row["raw_size"] = None if raw is None else len(raw)
    if args.json:
        print_json([_jsonable(row)])
        return exit_codes.OK
    body = row.pop("body_text") or ""
    html = row.pop("body_html")
    for key, value in row.items():
        if value is not None and value != "":
            shown = local_text(value) if isinstance(value, datetime) else value
            print(f"{key + ':':<19} {printable(shown)}")
    if html:
        print(f"{'body_html:':<19} {len(html)} characters (see --json)")
    print()
    print(printable(body, lines=True) if body else "(no text)")
    return exit_codes.OK


_STATE = ("id", "folder", "status", "deleted_from")


def run_move(args: argparse.Namespace, settings: Settings) -> int:
    with practice_engine(settings, args.db, args.timeout) as engine:
        row = _existing(engine, args.db, args.id, _STATE)
        if row["folder"] == "deleted":
            raise CliError(f"message {args.id} is already in deleted")
        if row["status"] == "sending":
            raise CliError(
                f"message {args.id} is being sent right now (status sending); "
                "move it when the attempt is over"
            )
        change = _move(args.id, row["folder"], row["status"])
        with engine.begin() as conn:
            changed = conn.execute(change).rowcount
        _one_changed(changed, args.id)
        after = _existing(engine, args.db, args.id, LIST_COLUMNS)
    return _report(args, after, f"Moved message {args.id} from {row['folder']} to deleted.")


def run_restore(args: argparse.Namespace, settings: Settings) -> int:
    with practice_engine(settings, args.db, args.timeout) as engine:
        row = _existing(engine, args.db, args.id, _STATE)
        if row["folder"] != "deleted":
            raise CliError(f"message {args.id} is not in deleted (it is in {row['folder']})")
        target = args.to or row["deleted_from"]
        if target not in ("inbox", "outbox", "sent"):
            raise CliError(
                f"message {args.id} does not say which folder it was deleted from; "
                "give --to inbox, outbox or sent"
            )
        change = _restore(args.id, target)
        with engine.begin() as conn:
            changed = conn.execute(change).rowcount
        _one_changed(changed, args.id)
        after = _existing(engine, args.db, args.id, LIST_COLUMNS)
    return _report(args, after, f"Restored message {args.id} to {target}.")


def run_action(args: argparse.Namespace, settings: Settings) -> int:
    with practice_engine(settings, args.db, args.timeout) as engine:
        _existing(engine, args.db, args.id, ("id",))
        _check_patient(engine, args.db, args.patient)
        change = _action(args.id, args.patient, args.by)
        with engine.begin() as conn:
            changed = conn.execute(change).rowcount
        _one_changed(changed, args.id)
        after = _existing(engine, args.db, args.id, LIST_COLUMNS)
    return _report(
        args,
        after,
        f"Message {args.id} linked to patient {args.patient} by {args.by} at "
        f"{_when(after['actioned_at'])}.",
    )


def _check_patient(engine: Engine, db: str, patient_id: int) -> None:
    with engine.connect() as conn:
        if not inspect(conn).has_table(patients.name):
            return
        if conn.execute(_ANY_PATIENT).first() is None:
            return  # the practice software does not share its patients: any id will do
        found = conn.execute(_patient(patient_id)).first()
    if found is None:
        raise CliError(
            f"no patient {patient_id} in the patients table of {db!r}", exit_codes.NO_INPUT
        )


def run_retry_failed(args: argparse.Namespace, settings: Settings) -> int:
    with practice_engine(settings, args.db, args.timeout) as engine:
        if args.id is not None:
            row = _existing(engine, args.db, args.id, _STATE)
            if (row["folder"], row["status"]) != ("outbox", "failed"):
                raise CliError(
                    f"message {args.id} is not a failed outbox message (it is in "
                    f"{row['folder']} with status {row['status']})"
                )
        with engine.begin() as conn:
            rows = [dict(r._mapping) for r in conn.execute(_failed(args.id))]
            ids = [r["id"] for r in rows]
            if ids:
                changed = conn.execute(_requeue(ids)).rowcount
                if changed != len(ids):  # the service changed one meanwhile: do nothing
                    conn.rollback()
                    raise CliError("a failed message changed while this command ran; run it again")
    if args.json:
        print_json([_jsonable(r) for r in rows])
    elif not rows:
        print(f"No failed messages in the outbox of {args.db!r}.")
    else:
        print_table(
            ["ID", "Channel", "To", "Subject", "Attempts made", "Last error"],
            [
                [
                    r["id"],
                    r["channel"],
                    _cut(r["to_addrs"], 30),
                    _cut(r["subject"], 30),
                    r["attempts_made"],
                    _cut(r["last_error"], 50),
                ]
                for r in rows
            ],
        )
        print(f"\nQueued {len(rows)} failed message(s) again in {args.db!r}.")
    return exit_codes.OK


def _one_changed(changed: int, message_id: int) -> None:
    if changed != 1:
        raise CliError(
            f"message {message_id} changed while this command ran; look at it again "
            "(`mail show`) and retry"
        )


def _report(args: argparse.Namespace, row: dict[str, Any], sentence: str) -> int:
    if args.json:
        print_json([_jsonable(row)])
    else:
        print(printable(sentence))
    return exit_codes.OK


# --- the statements ------------------------------------------------------------------------


@statement("mail.row", 41, ("id", "folder", "status"))
def _one_row(message_id: int, columns: tuple[str, ...]) -> Select[Any]:
    return select(*(_column(c) for c in columns)).where(_m.id == message_id)


@statement("mail.list", "outbox", "failed", 50)
def _listing(folder: str, status: str | None, limit: int | None) -> Select[Any]:
    """A folder's messages (of one status), newest first."""
    query = select(*(_column(c) for c in LIST_COLUMNS)).where(_m.folder == folder)
    if status is not None:
        query = query.where(_m.status == status)
    query = query.order_by(_m.id.desc())
    return query if limit is None else query.limit(limit)


@statement("mail.status_counts", "outbox")
def _status_counts(folder: str) -> Select[Any]:
    return (
        select(_m.status, func.count())
        .where(_m.folder == folder)
        .group_by(_m.status)
        .order_by(_m.status)
    )


@statement("mail.raw", 41)
def _raw(message_id: int) -> Select[Any]:
    """``raw`` as stored (text, when the practice software wrote text: ``_raw_bytes``)."""
    return select(type_coerce(_m.raw, NullType())).where(_m.id == message_id)


@statement("mail.move", 41, "outbox", "failed")
def _move(message_id: int, folder: str, status: str) -> Update:
    """To ``deleted``, unless the row changed since it was read."""
    return (
        update(email_messages)
        .where(_m.id == message_id, _m.folder == folder, _m.status == status)
        .values(folder="deleted", deleted_from=folder)
    )


@statement("mail.restore", 41, "outbox")
def _restore(message_id: int, target: str) -> Update:
    return (
        update(email_messages)
        .where(_m.id == message_id, _m.folder == "deleted")
        .values(folder=target, deleted_from=None)
    )


@statement("mail.action", 41, 7, "Reception")
def _action(message_id: int, patient_id: int, by: str) -> Update:
    """Link a message to a patient, marked actioned now (the server's clock)."""
    return (
        update(email_messages)
        .where(_m.id == message_id)
        .values(patient_id=patient_id, actioned_by=by, actioned_at=utcnow())
    )


_ANY_PATIENT = constant("mail.any_patient", select(patients.c.id).limit(1))


@statement("mail.patient", 7)
def _patient(patient_id: int) -> Select[Any]:
    return select(patients.c.id).where(patients.c.id == patient_id)


def _failed_outbox() -> Any:
    return (_m.folder == "outbox") & (_m.status == "failed")


@statement("mail.failed", 41)
def _failed(message_id: int | None) -> Select[Any]:
    """Failed outbox messages (one of them), with the attempts made before the reset."""
    made = _m.attempts.label("attempts_made")
    columns = (_m.id, _m.channel, _m.to_addrs, _m.subject, made, _m.last_error)
    query = select(*columns).where(_failed_outbox()).order_by(_m.id)
    return query if message_id is None else query.where(_m.id == message_id)


@statement("mail.requeue", [41, 42])
def _requeue(ids: list[int]) -> Update:
    """Queue failed outbox messages again: not in flight, no claim, not on the wire."""
    return (
        update(email_messages)
        .where(_failed_outbox(), _m.id.in_(ids))
        .values(
            status="queued",
            attempts=0,
            next_attempt_at=None,
            claimed_incarnation=None,
            wire_at=None,
        )
    )
