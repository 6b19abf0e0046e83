"""``email-service key init|rotate|status``: the key that encrypts the secrets at rest.

``key init`` makes the key file (``service.key_file``, mode 0600), refusing to replace one
that exists. ``key rotate`` makes a new key and re-encrypts every practice database's
secrets with it (``supervisor.key_rotation``: a crash at any point loses nothing).
``key status`` says how each practice database's secrets are stored, writing nothing.
``docs/install.md`` says where the key lives and how to back it up.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from actors.mail.stored_secrets import Secrets
from config import Settings
from config.key_file import (
    KeyFile,
    KeyFileError,
    create_key_file,
    ensure_key_file,
    read_key_ring,
)
from config.secret_box import KeyRing
from supervisor import exit_codes
from supervisor.commands.common import CliError, print_json, print_table
from supervisor.commands.databases import add_timeout, discover_or_fail
from supervisor.key_rotation import DatabaseSecrets


def register(subparsers: Any) -> None:
    """Add the ``key`` command and its ``init``, ``rotate`` and ``status`` subcommands."""
    parser = subparsers.add_parser(
        "key",
        help="make or rotate the key that encrypts the passwords and tokens saved in the "
        "practice databases",
        description="The passwords and sign-in tokens the Email Setup Wizard saves in a "
        "practice database are encrypted with a key kept in a file on this host "
        "(service.key_file), readable only by the service's account and never stored in "
        "a database. Back the file up apart from the databases: without it the saved "
        "secrets must be entered again. See docs/install.md.",
    )
    sub = parser.add_subparsers(dest="key_command", required=True, metavar="SUBCOMMAND")
    init = sub.add_parser(
        "init",
        help="make the key file (mode 0600); an existing one is never replaced",
        description="Make a new key and write it to service.key_file, readable only by "
        "this account (run it as the service's account). Refuses when the file exists: "
        "secrets may be encrypted with it (key rotate replaces a key safely). The setup "
        "wizard makes the file too when it is missing.",
    )
    init.set_defaults(handler=run_init)
    rotate = sub.add_parser(
        "rotate",
        help="make a new key and re-encrypt every practice database's secrets with it",
        description="Make a new key, then re-encrypt the secrets of every practice "
        "database on the server (all that `databases` lists as practice databases, "
        "served or not) with it. The old key stays in the key file until every database "
        "is done, so an interruption or a database that cannot be reached loses nothing: "
        "run it again. Plain-text secrets saved by older practice software are left as "
        "they are (the wizard encrypts them when they are saved again). The running "
        "service takes the new key up by itself. Exit status 0 when every database was "
        "done, 69 when one could not be reached (the old key is kept).",
    )
    add_timeout(rotate)
    rotate.add_argument("--json", action="store_true", help="print JSON for programs")
    rotate.set_defaults(handler=run_rotate)
    status = sub.add_parser(
        "status",
        help="say how each practice database's secrets are stored (encrypted, plain text, "
        "or not decryptable here)",
        description="Read the key file and every practice database on the server (nothing "
        "is written) and say, for each, how many secrets are encrypted with the current "
        "key, with an older key still in the file (a rotation not finished), as plain text "
        "(saved by older practice software: save them once with the wizard to encrypt "
        "them), and which cannot be decrypted with this host's key file. Exit status 65 "
        "when a secret cannot be decrypted, 69 when a database cannot be read.",
    )
    add_timeout(status)
    status.add_argument("--json", action="store_true", help="print JSON for programs")
    status.set_defaults(handler=run_status)


def key_path(settings: Settings) -> Path:
    """The key file of ``settings`` (``service.key_file``)."""
    return Path(settings.service.key_file)


def writing_secrets(settings: Settings) -> Secrets:
    """The wizard's ``Secrets``. A key file that is there but cannot be used is a
    ``CliError`` (exit ``CONFIG``, one line) at once, before any question; a missing one is
    made when the first secret is saved, and standard error says where (a relative
    ``service.key_file`` is relative to where the command runs: it should be the service's
    working folder)."""
    path = key_path(settings)
    if path.exists() or path.is_symlink():
        try:
            read_key_ring(path)
        except KeyFileError as exc:
            raise CliError(str(exc), exit_codes.CONFIG) from None
    reader = KeyFile(path)

    def writing() -> KeyRing:
        try:
            ring, created = ensure_key_file(path)
        except KeyFileError as exc:
            return KeyRing(problem=str(exc))
        if created and ring.current is not None:
            print(
                f"Made the key file {path.absolute()} (key id {ring.current.key_id}) for "
                "the passwords saved in the practice databases; the service must find it "
                "at service.key_file. Back it up apart from the databases (docs/install.md).",
                file=sys.stderr,
            )
        return ring

    return Secrets(reader.ring, writing)


def run_init(args: argparse.Namespace, settings: Settings) -> int:
    path = key_path(settings)
    try:
        ring = create_key_file(path)
    except KeyFileError as exc:
        raise CliError(str(exc), exit_codes.CONFIG) from None
    assert ring.current is not None
    print(
        f"Made the key file {path.absolute()} (key id {ring.current.key_id}), readable only "
        "by this account. Back it up apart from the databases: without it the saved "
        "passwords and tokens must be entered again."
    )
    return exit_codes.OK


def run_status(args: argparse.Namespace, settings: Settings) -> int:
    from supervisor.key_rotation import survey

    path = key_path(settings)
    try:
        ring = read_key_ring(path)
    except KeyFileError as exc:
        raise CliError(str(exc), exit_codes.CONFIG) from None
    assert ring.current is not None
    found = [
        DatabaseSecrets(info.name, error=info.error)
        if info.error is not None
        else survey(info.url, ring, info.name)
        for info in discover_or_fail(settings, timeout=args.timeout)
        if info.is_practice or info.error is not None
    ]
    if args.json:
        print_json(
            [
                {
                    "name": s.name,
                    "current": s.current,
                    "older": s.older,
                    "plain": s.plain,
                    "unreadable": list(s.unreadable),
                    "error": s.error or None,
                }
                for s in found
            ]
        )
    else:
        older = ", ".join(k.key_id for k in ring.previous)
        print(
            f"Key file {path.absolute()}: key {ring.current.key_id}"
            + (f" (older keys still in it: {older})" if older else "")
        )
        if found:
            print()
            print_table(["Database", "Secrets"], [[s.name, _secrets_line(s)] for s in found])
    unreadable = sum(bool(s.unreadable) for s in found)
    if unreadable:
        raise CliError(
            f"{unreadable} practice database(s) hold secrets this host's key file cannot "
            "decrypt: enter them again with email-service setup, or restore the key file "
            "they were saved with",
            exit_codes.DATA_ERROR,
        )
    unread = sum(bool(s.error) for s in found)
    if unread:
        raise CliError(f"{unread} database(s) could not be read", exit_codes.UNAVAILABLE)
    return exit_codes.OK


def _secrets_line(s: DatabaseSecrets) -> str:
    if s.error:
        return f"cannot be read: {s.error}"
    parts = [f"{s.current} encrypted"]
    if s.older:
        parts.append(f"{s.older} with an older key (key rotate finishes it)")
    if s.plain:
        parts.append(f"{s.plain} plain text (save it again with the wizard)")
    return "; ".join(parts + [f"cannot decrypt: {line}" for line in s.unreadable])


def run_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from supervisor.key_rotation import DatabaseOutcome, rotate

    path = key_path(settings)
    infos = discover_or_fail(settings, timeout=args.timeout)
    try:
        rotation = rotate(path, infos)
    except KeyFileError as exc:
        raise CliError(str(exc), exit_codes.CONFIG) from None

    def what(o: DatabaseOutcome) -> str:
        if o.error:
            return f"not done: {o.error}"
        parts = [f"{o.reencrypted} re-encrypted"]
        if o.plain:
            parts.append(f"{o.plain} plain text left (save it again with the wizard)")
        parts += [f"cannot decrypt: {line}" for line in o.unreadable]
        return "; ".join(parts)

    if args.json:
        print_json(
            [
                {
                    "name": o.name,
                    "reencrypted": o.reencrypted,
                    "plain": o.plain,
                    "unreadable": list(o.unreadable),
                    "error": o.error or None,
                }
                for o in rotation.databases
            ]
        )
    else:
        if rotation.databases:
            print_table(["Database", "Secrets"], [[o.name, what(o)] for o in rotation.databases])
        else:
            print("No practice databases on the server.")
    if rotation.kept_key_ids:
        raise CliError(
            f"the new key {rotation.new_key_id} is in use, but the old key "
            f"{', '.join(rotation.kept_key_ids)} stays in {path} because a database was "
            "not done; run email-service key rotate again when it can be reached",
            exit_codes.UNAVAILABLE,
        )
    if not args.json:
        print(
            f"\nEvery practice database now uses key {rotation.new_key_id}; the old key "
            f"was removed from {path.absolute()}. Back the key file up again."
        )
    return exit_codes.OK
