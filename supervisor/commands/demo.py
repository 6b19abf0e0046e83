"""``email-service demo``: the service on its embedded default, ready to look at.

Creates SQLite practice databases in a local folder (two eligible, plus a demo and a
training copy that the eligibility rule leaves alone), starts a local SMTP sink that
keeps what it receives, points the practices' settings at it, writes a settings file
for the other commands, and serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import update

from actors import practice_db
from actors.practice_schema import SINGLE_ROW_ID, email_settings, init_practice_database
from config import Settings
from supervisor.commands.common import CliError
from supervisor.commands.serve import configure_logging, prepare_process
from supervisor.service import run_service

PRACTICES = (
    "Smile Dental",
    "Harbour Family Dentistry",
    "Demo Practice",
    "Training 2026",
)


def register(subparsers: Any) -> None:
    """Add the ``demo`` command."""
    parser = subparsers.add_parser(
        "demo",
        help="run the service on SQLite practice databases and a local SMTP sink",
        description="Create SQLite practice databases (some eligible, some named like Demo "
        "and Training), start a local SMTP sink, and serve them until Ctrl-C.",
    )
    parser.add_argument(
        "--folder", default="var/demo", help="where the demo keeps its files (var/demo)"
    )
    parser.add_argument("--smtp-port", type=int, default=0, help="SMTP sink port (0: a free one)")
    parser.set_defaults(handler=run_demo)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def create_practices(folder: Path, smtp_port: int) -> list[str]:
    """Create the demo's practice databases (once) and point them at the SMTP sink."""
    practices = folder / "practices"
    practices.mkdir(parents=True, exist_ok=True)
    made = []
    for name in PRACTICES:
        url = f"sqlite:///{practices / (name + '.sqlite3')}"
        init_practice_database(url, practice_name=name)
        engine = practice_db.make_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(
                    update(email_settings)
                    .where(email_settings.c.id == SINGLE_ROW_ID)
                    .values(
                        smtp_host="127.0.0.1",
                        smtp_port=smtp_port,
                        smtp_security="none",
                        from_address=f"reception@{name.lower().replace(' ', '-')}.example",
                        from_name=name,
                    )
                )
        finally:
            engine.dispose()
        made.append(name)
    return made


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    from actors.smtp_sink import SmtpSink

    configure_logging("INFO")
    prepare_process()
    folder = Path(args.folder)
    port = args.smtp_port or _free_port()
    try:
        create_practices(folder, port)
    except OSError as exc:
        raise CliError(f"cannot create the demo in {folder}: {exc.strerror}") from None
    server_url = f"sqlite:///{folder / 'practices'}"
    event_store = f"sqlite:///{folder / 'events.sqlite3'}"
    config = folder / "service.toml"
    config.write_text(
        "# Written by `email-service demo`: the demo's settings, for the other commands.\n"
        f'[service]\nevent_store = "{event_store}"\n\n[databases]\nserver_url = "{server_url}"\n'
    )
    demo_settings = replace(
        settings,
        service=replace(settings.service, event_store=event_store),
        databases=replace(settings.databases, server_url=server_url),
    )
    sink = SmtpSink(folder / "sink", port)
    sink.start()

    def ready(page: str) -> None:
        print(
            f"\nThe Practice Email Service is running on {len(PRACTICES)} demo practice databases "
            f"in {folder / 'practices'}.\n"
            f"Status page: {page}\n"
            f"SMTP sink: 127.0.0.1:{port} (received mail goes to {folder / 'sink'}).\n\n"
            "Try, in another terminal:\n"
            f"  .venv/bin/email-service --config {config} databases\n"
            f"  .venv/bin/email-service --config {config} events tail\n"
            f"  .venv/bin/email-service --config {config} restart --db 'Smile Dental' --wait 10\n"
            f"  .venv/bin/email-service --config {config} events replay --db 'Smile Dental'\n\n"
            "Ctrl-C stops it.",
            flush=True,
        )

    try:
        return run_service(demo_settings, on_ready=ready)
    finally:
        sink.stop()
