"""Secrets at rest (issue 14, item 4): what the wizard saves, what the service reads.

- The wizard's non-interactive save (``email-service setup --db ... --save`` with
  ``--smtp-password-env``) leaves only ``enc:v1:`` values in every secret column that holds
  a secret, on SQLite, PostgreSQL and MariaDB; plain text left by older practice software
  is encrypted by the same save.
- The running service (the real tree, SQLite practice databases, aiosmtpd with AUTH):
  a plain-text password still sends; an encrypted one sends; one encrypted with another
  host's key makes that database "not set up" with the column and what to do, while the
  others keep sending; ``email-service key rotate`` while it runs re-encrypts and mail
  still flows.
- The demo writes its passwords encrypted.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from actors.mail.oauth import TokenSources
from actors.mail.settings import SECRET_FIELDS
from actors.mail.stored_secrets import Secrets
from actors.mail.work import SETTINGS_EVERY, MailDeps, MailWork, ProbeLimiter
from actors.practice_db import make_engine
from actors.practice_schema import email_settings, init_practice_database
from config import load_settings
from config.key_file import create_key_file, read_key_ring, replace_key_ring
from config.secret_box import PREFIX, KeyRing, encrypt, is_encrypted, key_id_in, new_key
from events.clock import FakeClock
from supervisor import exit_codes
from supervisor.cli import main
from supervisor.commands.demo import DemoState, Servers, create_practices
from supervisor.service import Tree, start_tree, stop_tree
from supervisor.workstation_view import read_status
from tests.conftest import KEY_FILE_VARIABLE, host_secrets
from tests.mail_helpers import (
    INCARNATION,
    claimed_engine,
    mail_settings,
    queue_row,
    read_row,
    wait_until,
    write_email_settings,
)
from tests.oauth_servers import OAuthAuthority, oauth_endpoints
from tests.servers import (
    MARIADB_ADMIN_URL,
    POSTGRES_ADMIN_URL,
    fresh_database,
    named_databases,
    server_url,
)
from tests.smtp_servers import RecordingSmtpServer, free_port
from tests.test_oauth_e2e import USER as OAUTH_USER
from tests.test_oauth_e2e import oauth_settings
from tests.tls_certs import CertificateSet

pytest_plugins = ["tests.conftest_mail"]

USER = "reception@smile.example"
PASSWORD = "Canary-SMTP-7f3a9c"
LEGACY = {
    "imap_password": "Canary-IMAP-legacy-2b81",
    "sms_password": "Canary-SMS-legacy-5d02",
    "oauth_client_secret": "Canary-client-secret-91aa",
    "oauth_refresh_token": "Canary-refresh-token-c3e4",
}
"""What older practice software left in the other secret columns, as plain text."""


def raw_settings(url: str) -> dict[str, Any]:
    """The ``email_settings`` row as stored (no decryption)."""
    engine = make_engine(url, pooled=False)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(select(email_settings)).one()._mapping)
    finally:
        engine.dispose()


# --- the wizard's save, on every kind of server ------------------------------------------


@dataclass(frozen=True)
class Practice:
    config: Path
    name: str
    url: str


def _config(path: Path, server: str) -> Path:
    path.write_text(
        f"[databases]\nserver_url = {json.dumps(server)}\n[mail]\nio_timeout_seconds = 10\n"
    )
    return path


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def practice(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Practice]:
    backend = request.param
    if backend == "sqlite":
        folder = tmp_path / "practices"
        folder.mkdir()
        url = f"sqlite:///{folder / 'Smile Dental.sqlite3'}"
        init_practice_database(url, practice_name="Smile Dental")
        yield Practice(_config(tmp_path / "c.toml", f"sqlite:///{folder}"), "Smile Dental", url)
        return
    admin = POSTGRES_ADMIN_URL if backend == "postgresql" else MARIADB_ADMIN_URL
    name = f"pes_keys_{uuid.uuid4().hex[:8]} Smile Dental"
    with named_databases(admin, [name]) as urls:
        init_practice_database(urls[name], practice_name="Smile Dental")
        yield Practice(_config(tmp_path / "c.toml", server_url(admin)), name, urls[name])


def test_the_wizards_save_leaves_only_encrypted_secrets(
    practice: Practice, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(practice.url, pooled=False)
    try:
        write_email_settings(engine, **LEGACY)  # older practice software: plain text
    finally:
        engine.dispose()
    monkeypatch.setenv("PES_KEYS_SMTP_PASSWORD", PASSWORD)
    with RecordingSmtpServer(users={USER: PASSWORD}) as smtp:
        code = main(
            [
                "--config", str(practice.config), "setup", "--db", practice.name, "--no-input",
                "--from-address", USER, "--smtp-host", "127.0.0.1", "--smtp-port",
                str(smtp.port), "--smtp-security", "none", "--smtp-username", USER,
                "--smtp-password-env", "PES_KEYS_SMTP_PASSWORD", "--save",
            ]
        )  # fmt: skip
    out, err = capsys.readouterr()
    assert (code, "Saved." in out) == (exit_codes.OK, True), out + err
    row = raw_settings(practice.url)
    assert {c: row[c][: len(PREFIX)] for c in SECRET_FIELDS} == dict.fromkeys(SECRET_FIELDS, PREFIX)
    opened, unreadable = host_secrets().open_row(row)
    assert unreadable == ()
    assert {c: opened[c] for c in SECRET_FIELDS} == {"smtp_password": PASSWORD, **LEGACY}


def test_the_wizard_asks_again_for_a_secret_it_cannot_decrypt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "practices"
    folder.mkdir()
    url = f"sqlite:///{folder / 'Smile Dental.sqlite3'}"
    init_practice_database(url, practice_name="Smile Dental")
    host_secrets()  # this host has a key file, but not the one the password was saved with
    foreign = encrypt(new_key(), "smtp_password", PASSWORD)
    engine = make_engine(url, pooled=False)
    try:
        write_email_settings(engine, smtp_host="127.0.0.1", smtp_password=foreign)
    finally:
        engine.dispose()
    config = _config(tmp_path / "c.toml", f"sqlite:///{folder}")
    main(["--config", str(config), "setup", "--db", "Smile Dental", "--no-input"])
    out, _err = capsys.readouterr()
    assert (
        "The saved settings have a problem: email_settings.smtp_password was encrypted "
        f"with another key (id {key_id_in(foreign)})"
    ) in out


def test_a_password_too_long_to_store_encrypted_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "practices"
    folder.mkdir()
    url = f"sqlite:///{folder / 'Smile Dental.sqlite3'}"
    init_practice_database(url, practice_name="Smile Dental")
    before = raw_settings(url)
    long_password = "Canary-long-" + "p" * 400
    monkeypatch.setenv("PES_KEYS_SMTP_PASSWORD", long_password)
    config = _config(tmp_path / "c.toml", f"sqlite:///{folder}")
    code = main(
        [
            "--config", str(config), "setup", "--db", "Smile Dental", "--no-input",
            "--smtp-host", "127.0.0.1", "--smtp-port", str(free_port()), "--smtp-security",
            "none", "--smtp-username", USER, "--smtp-password-env", "PES_KEYS_SMTP_PASSWORD",
            "--save", "--force",
        ]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == exit_codes.CONFIG
    assert err.startswith(
        "email-service: the SMTP password is too long to save encrypted (at most 337 bytes); "
        "nothing was saved"
    )
    assert raw_settings(url) == before
    assert "Canary-long" not in out + err


# --- the running service -----------------------------------------------------------------

NAMES = ("Plain Dental", "Sealed Dental", "Foreign Dental")


@dataclass
class Served:
    """The tree's run over three practices, and what was seen during it."""

    folder: Path
    engines: dict[str, Engine]
    smtp: RecordingSmtpServer
    rows: dict[str, int]
    statuses: dict[str, Any]
    rotate: tuple[int, str, str]
    after_rotation: int
    ring_after: KeyRing


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("served")
    folder = tmp / "practices"
    folder.mkdir()
    key_file = tmp / "secret.key"
    config = tmp / "c.toml"
    event_store = f"sqlite:///{tmp / 'events.sqlite3'}"
    config.write_text(
        f"[service]\nevent_store = {json.dumps(event_store)}\n"
        f"key_file = {json.dumps(str(key_file))}\n"
        f"[databases]\nserver_url = {json.dumps(f'sqlite:///{folder}')}\n"
        "[health]\ncheckin_seconds = 3.0\n[mail]\nio_timeout_seconds = 3.0\n"
        "outbox_poll_seconds = 1.0\n"
    )
    secrets = Secrets.for_writing(key_file)
    smtp = RecordingSmtpServer(users={USER: PASSWORD}).start()
    engines: dict[str, Engine] = {}
    for name in NAMES:
        url = f"sqlite:///{folder / (name + '.sqlite3')}"
        init_practice_database(url, practice_name=name)
        engines[name] = make_engine(url)
    common = {
        "from_address": USER,
        "smtp_host": smtp.host,
        "smtp_port": smtp.port,
        "smtp_security": "none",
        "smtp_username": USER,
    }
    write_email_settings(engines["Plain Dental"], **common, smtp_password=PASSWORD)
    sealed = secrets.encrypt_for_storage("smtp_password", PASSWORD)
    write_email_settings(engines["Sealed Dental"], **common, smtp_password=sealed)
    foreign = encrypt(new_key(), "smtp_password", PASSWORD)
    write_email_settings(engines["Foreign Dental"], **common, smtp_password=foreign)
    rows = {name: queue_row(engines[name], subject=f"From {name}") for name in NAMES}
    settings = load_settings(str(config), environ={})
    tree: Tree = start_tree(settings)
    try:

        def sent(name: str, row_id: int) -> bool:
            return read_row(engines[name], row_id)["status"] == "sent"

        wait_until(
            lambda: (
                sent("Plain Dental", rows["Plain Dental"])
                and sent("Sealed Dental", rows["Sealed Dental"])
            ),
            "the plain and the sealed practice to send",
            timeout=60,
        )

        def foreign_reported() -> bool:
            seen = read_status("Foreign Dental", f"sqlite:///{folder / 'Foreign Dental.sqlite3'}",
                               timedelta(seconds=15))  # fmt: skip
            return seen.status.status == "not_available" and "decrypt" in seen.status.tooltip

        wait_until(foreign_reported, "the foreign practice's check-in to say why", timeout=60)
        statuses = {
            name: read_status(
                name, f"sqlite:///{folder / (name + '.sqlite3')}", timedelta(seconds=15)
            )
            for name in NAMES
        }
        with pytest.MonkeyPatch.context() as env:
            env.setenv(KEY_FILE_VARIABLE, str(key_file))  # whatever a test set before
            rotated = _cli(["--config", str(config), "key", "rotate"])
        after = queue_row(engines["Sealed Dental"], subject="After the rotation")
        wait_until(lambda: sent("Sealed Dental", after), "a message after the rotation", 60)
        ring_after = read_key_ring(key_file)
        yield Served(folder, engines, smtp, rows, statuses, rotated, after, ring_after)
    finally:
        stop_tree(tree, "test over")
        for engine in engines.values():
            engine.dispose()
        smtp.stop()


def _cli(argv: list[str]) -> tuple[int, str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_a_plain_text_password_still_sends(served: Served) -> None:
    assert read_row(served.engines["Plain Dental"], served.rows["Plain Dental"])["status"] == (
        "sent"
    )
    assert served.statuses["Plain Dental"].status.status == "running"


def test_an_encrypted_password_sends(served: Served) -> None:
    assert served.statuses["Sealed Dental"].status.status == "running"


def test_another_hosts_key_makes_that_database_not_set_up_with_the_reason(
    served: Served,
) -> None:
    tooltip = served.statuses["Foreign Dental"].status.tooltip
    assert tooltip.startswith(
        "Sending (SMTP): Email is not set up for this practice: the saved SMTP password "
        "cannot be decrypted (email_settings.smtp_password was encrypted with another key"
    )
    assert tooltip.endswith(
        "enter it again with the Email Setup Wizard (email-service setup --db Foreign "
        "Dental), or restore the key file it was saved with (service.key_file)"
    )
    assert PASSWORD not in tooltip


def test_the_undecryptable_database_sends_nothing(served: Served) -> None:
    row = read_row(served.engines["Foreign Dental"], served.rows["Foreign Dental"])
    assert row["status"] == "queued"
    assert not any(b"From Foreign Dental" in m.content for m in served.smtp.messages)


def test_key_rotate_reencrypts_while_the_service_runs_and_mail_still_flows(
    served: Served,
) -> None:
    code, out, err = served.rotate
    assert code == exit_codes.OK, out + err
    assert served.ring_after.previous == ()
    stored = raw_settings(f"sqlite:///{served.folder / 'Sealed Dental.sqlite3'}")
    assert key_id_in(stored["smtp_password"]) == served.ring_after.current.key_id  # type: ignore[union-attr]
    assert read_row(served.engines["Sealed Dental"], served.after_rotation)["status"] == "sent"


def test_key_rotate_leaves_plain_text_as_it_is_and_says_so(served: Served) -> None:
    stored = raw_settings(f"sqlite:///{served.folder / 'Plain Dental.sqlite3'}")
    assert stored["smtp_password"] == PASSWORD
    assert "1 plain text left (save it again with the wizard)" in served.rotate[1]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"])
def test_restoring_the_key_file_is_taken_up_without_a_restart(backend: str, tmp_path: Path) -> None:
    with fresh_database(backend, tmp_path) as url:
        _restore_the_key_file(url, tmp_path)


def _restore_the_key_file(url: str, tmp_path: Path) -> None:
    engine = claimed_engine(url)
    key_file = tmp_path / "secret.key"
    create_key_file(key_file)  # a new key: the saved password was made with another
    old = new_key()
    write_email_settings(
        engine,
        smtp_host="127.0.0.1",
        smtp_port=free_port(),
        smtp_security="none",
        smtp_username=USER,
        smtp_password=encrypt(old, "smtp_password", PASSWORD),
    )
    clock = FakeClock()
    deps = MailDeps(
        mail_settings(), 60.0, ProbeLimiter(), ZoneInfo("UTC"),
        secrets=Secrets.for_service(key_file),
    )  # fmt: skip
    work = MailWork("Smile", INCARNATION, lambda: engine, lambda _events: None, clock, deps)
    try:
        _, before = work.check()
        replace_key_ring(key_file, KeyRing(old, (), ""))  # restored from the backup
        clock.advance(SETTINGS_EVERY)
        _, after = work.check()
    finally:
        work.close()
        engine.dispose()
    assert [d.component for d in before] == ["smtp"]
    assert "cannot be decrypted" in before[0].message
    assert not any("decrypt" in d.message for d in after)


def test_a_key_file_others_may_read_makes_the_database_not_set_up_saying_so(
    tmp_path: Path,
) -> None:
    engine = claimed_engine(f"sqlite:///{tmp_path / 'practice.sqlite3'}")
    key_file = tmp_path / "secret.key"
    secrets = Secrets.for_writing(key_file)
    write_email_settings(
        engine,
        smtp_host="127.0.0.1",
        smtp_port=free_port(),
        smtp_security="none",
        smtp_password=secrets.encrypt_for_storage("smtp_password", PASSWORD),
    )
    key_file.chmod(0o644)
    deps = MailDeps(
        mail_settings(), 60.0, ProbeLimiter(), ZoneInfo("UTC"),
        secrets=Secrets.for_service(key_file),
    )  # fmt: skip
    work = MailWork("Smile", INCARNATION, lambda: engine, lambda _events: None, FakeClock(), deps)
    try:
        _, diagnostics = work.check()
    finally:
        work.close()
        engine.dispose()
    [line] = diagnostics
    assert line.component == "smtp"
    assert "may be read by other accounts (mode 0644); make it readable only by the " in (
        line.message
    )
    assert f"chmod 600 {key_file}" in line.message


# --- a refresh token the provider replaced --------------------------------------------


def test_a_replaced_refresh_token_is_saved_encrypted_and_read_back_as_its_own(
    tmp_path: Path, certs: CertificateSet
) -> None:
    engine = claimed_engine(f"sqlite:///{tmp_path / 'practice.sqlite3'}", INCARNATION)
    secrets = Secrets.for_writing(tmp_path / "secret.key")
    clock = FakeClock()
    with (
        OAuthAuthority(certs) as authority,
        RecordingSmtpServer("starttls", certs, oauth=authority) as smtp,
    ):
        settings = oauth_settings(authority, "microsoft-delegated", smtp)
        write_email_settings(engine, **secrets.seal_row(dataclasses.asdict(settings)))
        deps = MailDeps(
            mail_settings(ca_file=str(certs.ca_cert)), 60.0, ProbeLimiter(), ZoneInfo("UTC"),
            tokens=TokenSources(oauth_endpoints(authority), clock), secrets=secrets,
        )  # fmt: skip
        work = MailWork("Smile", INCARNATION, lambda: engine, lambda _events: None, clock, deps)
        try:
            row_id = queue_row(engine)
            work.refresh_settings()
            work.run_outbox()
            live = authority.live_refresh_tokens(OAUTH_USER)
            stored = raw_settings(f"sqlite:///{tmp_path / 'practice.sqlite3'}")
            clock.advance(SETTINGS_EVERY)
            _, diagnostics = work.check()  # reads the saved token back
        finally:
            work.close()
    engine.dispose()
    assert read_row_status(tmp_path, row_id) == "sent"
    assert is_encrypted(stored["oauth_refresh_token"])
    assert secrets.open_row(stored)[0]["oauth_refresh_token"] == live[0]
    assert not any("decrypt" in d.message for d in diagnostics)


def read_row_status(tmp_path: Path, row_id: int) -> str:
    engine = make_engine(f"sqlite:///{tmp_path / 'practice.sqlite3'}", pooled=False)
    try:
        return str(read_row(engine, row_id)["status"])
    finally:
        engine.dispose()


# --- the demo ------------------------------------------------------------------------------


def test_the_demo_writes_its_passwords_encrypted(tmp_path: Path) -> None:
    secrets = Secrets.for_writing(tmp_path / "secret.key")
    names = create_practices(tmp_path, Servers(2525, 2526, 1143), DemoState(), secrets)
    for name in names:
        row = raw_settings(f"sqlite:///{tmp_path / 'practices' / (name + '.sqlite3')}")
        secret_values = [row[c] for c in SECRET_FIELDS if row[c]]
        assert secret_values, name
        assert all(is_encrypted(v) for v in secret_values), name
