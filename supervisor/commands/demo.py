"""``email-service demo``: the service on its embedded default, doing its whole job.

Creates SQLite practice databases in a local folder (three eligible, plus a demo and a
training copy that the eligibility rule leaves alone), starts a local SMTP sink that keeps
what it receives, a second local SMTP server that requires a log-in, and (when Dovecot is
installed) a local IMAP server; points the practices' settings at them; queues a few
appointment reminders (email, and SMS through the email-to-SMS gateway) in each eligible
practice and puts a few patient replies in its IMAP mailbox; writes a settings file for
the other commands, and serves until Ctrl-C, which stops the servers it started too.

One eligible practice (``FAILING``) is set up to fail: its SMTP server requires a log-in
and the saved password is wrong, so its light flashes and the printed hints say how to
fix it (``email-service setup``) and restart it.

The folder remembers (``demo.json``) the ports it used, which practices were configured
and seeded: a second start reuses them, keeps what was fixed, and adds no sample twice
(every sample also has a fixed Message-ID).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import shlex
import socket
import sys
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Update, update

from actors import practice_db
from actors.mail.stored_secrets import Secrets
from actors.practice_schema import (
    SINGLE_ROW_ID,
    email_settings,
    init_practice_database,
)
from actors.statements import statement
from config import Settings
from config.key_file import KeyFileError
from config.settings import HttpSettings
from supervisor.commands.common import CliError
from supervisor.commands.serve import configure_logging, prepare_process
from supervisor.demo import imap_server, samples
from supervisor.eligibility import eligibility
from supervisor.service import run_service

PRACTICES = (
    "Smile Dental",
    "Harbour Family Dentistry",
    "Riverside Dental Care",
    "Demo Practice",
    "Training 2026",
)
FAILING = "Riverside Dental Care"
"""The practice whose SMTP password is wrong on purpose."""

IMAP_PASSWORD = "demo"  # every demo mailbox's password (a local server on loopback)
SMTP_LOGIN_PASSWORD = "riverside-demo"  # the right password on the log-in SMTP server
WRONG_PASSWORD = "wrong-password"  # what the failing practice has saved at first
STATE_FILE = "demo.json"


def register(subparsers: Any) -> None:
    """Add the ``demo`` command."""
    parser = subparsers.add_parser(
        "demo",
        help="run the service on SQLite practice databases with local mail servers",
        description="Create SQLite practice databases (some eligible, some named like Demo "
        "and Training), start a local SMTP sink, a local SMTP server that needs a log-in, "
        "and a local IMAP server when Dovecot is installed, queue sample appointment "
        "reminders and patient replies, and serve them until Ctrl-C. One practice ("
        f"{FAILING}) is set up with a wrong SMTP password, to show a failure and its fix. "
        "Started again on the same folder it reuses what is there.",
    )
    parser.add_argument(
        "--folder", default="var/demo", help="where the demo keeps its files (var/demo)"
    )
    parser.add_argument(
        "--smtp-port", type=int, default=0, help="SMTP sink port (0: the last one, or a free one)"
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="where the status page listens (default: http.listen; port 0: any free port)",
    )
    parser.set_defaults(handler=run_demo)


# --- what the folder remembers ----------------------------------------------------------


@dataclass
class DemoState:
    """``demo.json``: ports in use and what was done once."""

    ports: dict[str, int] = field(default_factory=dict)
    configured: list[str] = field(default_factory=list)  # practices whose passwords were set
    queued: list[str] = field(default_factory=list)  # practices whose reminders were queued
    replied: list[str] = field(default_factory=list)  # practices whose replies were appended

    @classmethod
    def load(cls, path: Path) -> DemoState:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        return cls(
            ports={k: int(v) for k, v in dict(data.get("ports", {})).items()},
            configured=[str(n) for n in data.get("configured", [])],
            queued=[str(n) for n in data.get("queued", [])],
            replied=[str(n) for n in data.get("replied", [])],
        )

    def save(self, path: Path) -> None:
        staged = path.with_suffix(".new")
        staged.write_text(json.dumps(self.__dict__, indent=2) + "\n")
        staged.replace(path)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _port(state: DemoState, key: str, wanted: int = 0) -> int:
    """``wanted``, else the port remembered under ``key`` when it is free, else a free one."""
    remembered = state.ports.get(key, 0)
    port = wanted or (remembered if remembered and _free(remembered) else _free_port())
    state.ports[key] = port
    return port


# --- the practices ----------------------------------------------------------------------


def eligible_names(settings: Settings) -> list[str]:
    """The demo practices the service serves (the same rule the service applies)."""
    return [
        name
        for name in PRACTICES
        if eligibility(
            name,
            is_practice=True,
            registered_server=None,
            server_id=settings.service.server_id,
            genuine_server_check=settings.service.genuine_server_check,
        ).eligible
    ]


@dataclass(frozen=True, slots=True)
class Servers:
    """The local servers' ports (``imap_port`` 0: no IMAP server)."""

    sink_port: int
    login_port: int
    imap_port: int


def practice_url(folder: Path, name: str) -> str:
    return f"sqlite:///{folder / 'practices' / (name + '.sqlite3')}"


@statement("demo.configure", {"from_name": "Riverside Dental", "sms_enabled": True})
def _configure(values: dict[str, Any]) -> Update:
    """A demo practice's settings."""
    return update(email_settings).where(email_settings.c.id == SINGLE_ROW_ID).values(**values)


def create_practices(
    folder: Path, servers: Servers, state: DemoState, secrets: Secrets
) -> list[str]:
    """Create the demo's practice databases (once) and point them at the local servers.

    Every start writes the servers' hosts and ports; user names and passwords only the
    first time, so a password fixed with ``email-service setup`` stays fixed. Passwords
    are written encrypted with the demo's key file, as the wizard writes them.
    """
    (folder / "practices").mkdir(parents=True, exist_ok=True)
    for name in PRACTICES:
        url = practice_url(folder, name)
        init_practice_database(url, practice_name=name)
        failing = name == FAILING
        values: dict[str, Any] = {
            "smtp_host": "127.0.0.1",
            "smtp_port": servers.login_port if failing else servers.sink_port,
            "smtp_security": "none",
            "imap_enabled": servers.imap_port != 0,
            "imap_host": "127.0.0.1",
            "imap_port": servers.imap_port or 143,
            "imap_security": "none",
            "imap_username": samples.slug(name),
            "imap_password": IMAP_PASSWORD,
        }
        if name not in state.configured:
            values |= {
                "from_address": samples.reception_address(name),
                "from_name": name,
                "smtp_username": samples.slug(name) if failing else None,
                "smtp_password": WRONG_PASSWORD if failing else None,
                "sms_enabled": True,
                "sms_gateway": samples.SMS_GATEWAY,
                "sms_region": "GB",
            }
        engine = practice_db.make_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(_configure(secrets.seal_row(values)))
        finally:
            engine.dispose()
        if name not in state.configured:
            state.configured.append(name)
    return list(PRACTICES)


def key_file(folder: Path) -> Path:
    """The demo's key file: in its folder, beside its event log."""
    return folder / "secret.key"


def demo_secrets(folder: Path) -> Secrets:
    """The demo's ``Secrets`` (its key file is made on the first start)."""
    try:
        return Secrets.for_writing(key_file(folder))
    except KeyFileError as exc:
        raise CliError(f"cannot create the demo in {folder}: {exc}") from None


def queue_samples(folder: Path, names: list[str], state: DemoState, today: date) -> int:
    """Queue the reminders of each practice in ``names`` that has not had them; return
    how many rows were queued."""
    queued = 0
    for name in names:
        if name in state.queued:
            continue
        queued += samples.queue_reminders(practice_url(folder, name), name, today)
        state.queued.append(name)
    return queued


def append_replies(
    folder: Path, server: imap_server.LocalImapServer, names: list[str], state: DemoState
) -> int:
    """Put the patients' replies into each practice's mailbox, once: a reply already in
    the mailbox or already imported into the practice's inbox is not added again."""
    appended = 0
    for name in names:
        if name in state.replied:
            continue
        user = samples.slug(name)
        in_mailbox = server.message_ids(user)
        engine = practice_db.make_engine(practice_url(folder, name))
        try:
            with engine.connect() as conn:
                imported = {m for (m,) in conn.execute(samples.MESSAGE_IDS)}
        finally:
            engine.dispose()
        for message_id, raw in samples.replies_for(name, date.today()):
            if message_id not in in_mailbox and message_id not in imported:
                server.append(user, raw)
                appended += 1
        state.replied.append(name)
    return appended


def imap_folder(folder: Path) -> Path:
    """Where the IMAP server keeps its files: ``FOLDER/imap``; when Dovecot's mail user
    could not reach a folder under ``FOLDER`` (a private home folder, started as root),
    ``FOLDER/imap`` is a link to a folder of its own in the system's temporary folder
    (named after ``FOLDER``, so a second start finds it again)."""
    inside = folder / "imap"
    open_to_mail_user = os.geteuid() != 0 or imap_server.reachable_by_others(folder)
    if open_to_mail_user and not inside.is_symlink():
        inside.mkdir(parents=True, exist_ok=True)
        return inside
    tag = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
    outside = Path(tempfile.gettempdir()) / f"email-service-demo-imap-{tag}"
    outside.mkdir(mode=0o755, exist_ok=True)
    os.chmod(outside, 0o755)
    if inside.is_symlink() and inside.resolve() != outside.resolve():
        inside.unlink()
    if not inside.is_symlink():
        if inside.is_dir() and not any(inside.iterdir()):
            inside.rmdir()
        inside.symlink_to(outside, target_is_directory=True)
    return inside


# --- running it -------------------------------------------------------------------------


def _program() -> str:
    """How to call this program again from the current folder, for the printed hints."""
    called = Path(sys.argv[0])
    if called.name == "email-service" and called.exists():
        relative = os.path.relpath(called)
        if relative.startswith(".."):
            return str(called.resolve())
        return relative if relative.startswith(".") else "./" + relative
    return "email-service"


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    from actors.smtp_sink import SmtpSink

    configure_logging("INFO")
    # The log-in SMTP server offers AUTH without TLS on purpose (loopback, demo only):
    # aiosmtpd warns about it on every connection.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    prepare_process()
    folder = Path(args.folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create the demo in {folder}: {exc.strerror}") from None
    state_path = folder / STATE_FILE
    state = DemoState.load(state_path)
    names = eligible_names(settings)
    imap_note = ""
    imap: imap_server.LocalImapServer | None = None
    if imap_server.installed():
        imap = imap_server.LocalImapServer(
            imap_folder(folder),
            _port(state, "imap"),
            {samples.slug(n): IMAP_PASSWORD for n in PRACTICES},
        )
        try:
            imap.start()
        except imap_server.ImapServerError as exc:
            imap_note = f"The local IMAP server did not start, so no mail comes in: {exc}"
            imap = None
    else:
        imap_note = (
            "Dovecot is not installed, so the demo has no IMAP server and no mail comes in. "
            f"To see incoming mail too: `{imap_server.INSTALL_HINT}` (as root), then start "
            "the demo again."
        )
    servers = Servers(
        sink_port=_port(state, "smtp_sink", args.smtp_port),
        login_port=_port(state, "smtp_login"),
        imap_port=imap.port if imap is not None else 0,
    )
    sink = SmtpSink(folder / "sink", servers.sink_port)
    login_sink = SmtpSink(
        folder / "sink-login",
        servers.login_port,
        users={samples.slug(FAILING): SMTP_LOGIN_PASSWORD},
    )
    started: list[Any] = []
    try:
        try:
            create_practices(folder, servers, state, demo_secrets(folder))
            queue_samples(folder, names, state, date.today())
            if imap is not None:
                append_replies(folder, imap, names, state)
            state.save(state_path)
        except OSError as exc:
            raise CliError(f"cannot create the demo in {folder}: {exc.strerror}") from None
        for server in (sink, login_sink):
            server.start()
            started.append(server)
        server_url = f"sqlite:///{folder / 'practices'}"
        event_store = f"sqlite:///{folder / 'events.sqlite3'}"
        config = folder / "service.toml"
        config.write_text(
            "# Written by `email-service demo`: the demo's settings, for the other commands.\n"
            f'[service]\nevent_store = "{event_store}"\n'
            f"key_file = {json.dumps(str(key_file(folder)))}\n\n"
            f'[databases]\nserver_url = "{server_url}"\n'
        )
        http, page_note = page_settings(settings, args.listen)
        demo_settings = replace(
            settings,
            service=replace(
                settings.service, event_store=event_store, key_file=str(key_file(folder))
            ),
            databases=replace(settings.databases, server_url=server_url),
            http=http,
        )

        def ready(page: str) -> None:
            print(hints(folder, config, page, servers, names, imap_note, page_note), flush=True)

        return run_service(demo_settings, on_ready=ready)
    finally:
        for server in reversed(started):
            with contextlib.suppress(Exception):
                server.stop()
        if imap is not None:
            imap.stop()


def page_settings(settings: Settings, listen: str | None) -> tuple[HttpSettings, str]:
    """Where the status page listens: ``listen`` when given, else ``http.listen``; when
    that port is taken (another demo, a service), any free port, with a note saying so."""
    if listen is not None:
        return replace(settings.http, listen=listen), ""
    http = settings.http
    if http.port == 0 or _bindable(http.host, http.port):
        return http, ""
    free = replace(http, listen=http.listen.rpartition(":")[0] + ":0")
    note = (
        f"Port {http.port} ({http.listen}) is in use (another demo, or the service?), so the "
        "status page is on a free port instead."
    )
    return free, note


def _bindable(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the HTTP server does
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def hints(
    folder: Path,
    config: Path,
    page: str,
    servers: Servers,
    names: list[str],
    imap_note: str,
    page_note: str = "",
) -> str:
    """What the demo prints once it serves: where to look, and how to fix the failure."""
    cli = f"{_program()} --config {shlex.quote(str(config))}"
    first = shlex.quote(names[0]) if names else "'Smile Dental'"
    lines = [
        "",
        f"The Practice Email Service is running on {len(PRACTICES)} demo practice databases "
        f"in {folder / 'practices'}: {', '.join(names)} are served; the others are named like "
        "demo or training copies and left alone.",
        f"Status page: {page}",
        *([page_note] if page_note else []),
        "",
        "Each served practice had appointment reminders queued (email, and SMS through the "
        "email-to-SMS gateway). What the practices send arrives in the SMTP sink "
        f"(127.0.0.1:{servers.sink_port}): one .eml file per message in {folder / 'sink'}.",
    ]
    if servers.imap_port:
        lines.append(
            f"Patients' replies wait in the local IMAP server (Dovecot on 127.0.0.1:"
            f"{servers.imap_port}, one mailbox per practice, password {IMAP_PASSWORD!r}) "
            "and are imported into each practice's inbox."
        )
    else:
        lines.append(imap_note)
    lines += ["", "Look at a practice's mail (in another terminal):"]
    for mail_folder in ("outbox", "sent", "inbox"):
        lines.append(f"  {cli} mail list --db {first} --folder {mail_folder}")
    lines += [
        f"  {cli} status",
        f"  {cli} mail send-test --db {first} --to you@example.org",
        "",
        f"{FAILING} is set up to fail: its SMTP server (127.0.0.1:{servers.login_port}) "
        "requires a log-in and the saved password is wrong. On the status page its light "
        "flashes: hover over it for the tooltip, click it for the diagnostic log and the "
        "Restart Email Service button. Or here:",
        f"  {cli} diagnostics --db {shlex.quote(FAILING)}",
        "To fix it, save the right password (the wizard tests it first):",
        f"  DEMO_SMTP_PASSWORD={SMTP_LOGIN_PASSWORD} {cli} setup --db {shlex.quote(FAILING)} "
        "--no-input --smtp-password-env DEMO_SMTP_PASSWORD --save",
        "then press Restart Email Service on the status page (or run "
        f"`{cli} restart --db {shlex.quote(FAILING)} --wait 30`). The light turns steady; "
        "its queued reminders go out right after the restart (a Restart a person asks for "
        "tries at once the mail that waited because the server refused or could not be "
        f"reached) and land in {folder / 'sink-login'}.",
    ]
    lines += ["", "Ctrl-C stops the demo and its mail servers."]
    return "\n".join(lines)
