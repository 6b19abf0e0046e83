"""``email-service demo`` end to end: a subprocess in a fresh folder, seen through the
command line (``mail list --json``), its SMTP sink's folder, Dovecot's mailbox and the
status page in Debian's Chromium.

The demo runs on a free port for its page (``--listen 127.0.0.1:0``) and free ports for
its mail servers, so it can run beside another demo. It needs Dovecot (installed on the
test machines): without it the demo says how to get it and has no inbox, and the inbox
tests fail.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path
from typing import IO, Any

import pytest
from imapclient import IMAPClient
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from actors import practice_db
from actors.practice_schema import email_messages, email_settings
from config import Settings, load_settings
from supervisor.cli import main
from supervisor.commands import demo as demo_command
from supervisor.commands.demo import FAILING, IMAP_PASSWORD, PRACTICES, page_settings
from supervisor.demo import imap_server, samples
from tests.http_fixtures import ARTIFACTS
from tests.mail_helpers import wait_until

SERVED = ("Smile Dental", "Harbour Family Dentistry")
"""The demo practices whose mail goes through (the third served one, FAILING, fails)."""

START_SECONDS = 90.0
MAIL_SECONDS = 60.0
"""How long mail may take: the outbox looks every 5 s, the inbox imports at start."""
CHANGE_MS = 60_000


@dataclass
class Demo:
    """A running ``email-service demo`` process and what it printed."""

    folder: Path
    process: subprocess.Popen[str]
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    page_url: str = ""
    readers: list[threading.Thread] = field(default_factory=list)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        config = self.folder / "service.toml"
        return subprocess.run(
            [sys.executable, "-m", "supervisor.cli", "--config", str(config), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def mail(self, db: str, folder: str) -> list[dict[str, Any]]:
        done = self.cli("mail", "list", "--db", db, "--folder", folder, "--limit", "0", "--json")
        assert done.returncode == 0, done.stderr
        rows: list[dict[str, Any]] = json.loads(done.stdout)
        return rows

    def sink_message_ids(self) -> list[str]:
        ids = []
        for path in sorted((self.folder / "sink").glob("*.eml")):
            parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
            ids.append(str(parsed["Message-ID"]).strip())
        return ids


def _read(stream: IO[str], into: list[str], ready: threading.Event | None) -> None:
    for line in stream:
        into.append(line)
        if ready is not None and line.startswith("Status page: "):
            ready.set()
    if ready is not None:
        ready.set()


def start_demo(folder: Path) -> Demo:
    """Start the demo on ``folder`` (in ``folder``'s parent as working folder); return it
    once it printed its page's address."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "supervisor.cli",
            "demo",
            "--folder",
            str(folder),
            "--listen",
            "127.0.0.1:0",
        ],
        cwd=folder.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    demo = Demo(folder, process)
    ready = threading.Event()
    assert process.stdout is not None
    assert process.stderr is not None
    demo.readers = [
        threading.Thread(target=_read, args=(process.stdout, demo.out, ready), daemon=True),
        threading.Thread(target=_read, args=(process.stderr, demo.err, None), daemon=True),
    ]
    for reader in demo.readers:
        reader.start()
    ready.wait(START_SECONDS)
    printed = "".join(demo.out)
    if "Status page: " not in printed:
        stop_demo(demo)
        raise AssertionError(f"the demo did not start:\n{printed}\n{''.join(demo.err)}")
    demo.page_url = printed.split("Status page: ", 1)[1].split()[0].rstrip("/")
    return demo


def stop_demo(demo: Demo) -> None:
    """Ctrl-C's signal's sibling, SIGTERM; the demo stops its mail servers too."""
    demo.process.terminate()
    try:
        demo.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        demo.process.kill()
        demo.process.wait()
    for reader in demo.readers:
        reader.join(timeout=10)
    for stream in (demo.process.stdout, demo.process.stderr):
        if stream is not None:
            stream.close()


def remove_demo(folder: Path) -> None:
    """Delete the demo's folder and the IMAP folder it may have put outside it."""
    imap = folder / "imap"
    if imap.is_symlink():
        shutil.rmtree(imap.resolve(), ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)


def mailbox_message_ids(folder: Path, user: str) -> list[bytes]:
    """The Message-ID headers in ``user``'s IMAP INBOX on the demo's Dovecot."""
    port = json.loads((folder / "demo.json").read_text())["ports"]["imap"]
    with IMAPClient("127.0.0.1", port, ssl=False, timeout=30) as imap:
        imap.login(user, IMAP_PASSWORD)
        imap.select_folder("INBOX", readonly=True)
        uids = imap.search(["ALL"])
        fetched = imap.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]) if uids else {}
    return [bytes(v) for data in fetched.values() for k, v in data.items() if b"HEADER" in k]


def _no_dovecot_left(folder: Path) -> bool:
    found = subprocess.run(
        ["pgrep", "-f", f"dovecot -F -c {(folder / 'imap').resolve()}"],
        capture_output=True,
        check=False,
    )
    return found.returncode == 1


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    folder = tmp_path_factory.mktemp("demo") / "var-demo"
    running = start_demo(folder)
    try:
        yield running
    finally:
        stop_demo(running)
        assert "Traceback" not in "".join(running.err), "".join(running.err)
        assert _no_dovecot_left(folder)
        remove_demo(folder)


def _sent(demo: Demo, db: str) -> list[dict[str, Any]]:
    return demo.mail(db, "sent")


def test_the_reminders_of_each_served_practice_reach_sent(demo: Demo) -> None:
    for db in SERVED:
        wait_until(lambda db=db: len(_sent(demo, db)) == 4, f"4 sent in {db}", MAIL_SECONDS)
        rows = _sent(demo, db)
        assert {r["status"] for r in rows} == {"sent"}
        assert sorted(r["channel"] for r in rows) == ["email", "email", "sms", "sms"]
        assert {r["message_id"] for r in rows} == set(samples.reminder_ids(db))


def test_the_sink_keeps_every_reminder_and_sms_goes_as_email_to_the_gateway(demo: Demo) -> None:
    expected = {m for db in SERVED for m in samples.reminder_ids(db)}
    wait_until(
        lambda: expected <= set(demo.sink_message_ids()), "the reminders in the sink", MAIL_SECONDS
    )
    gateway = samples.SMS_GATEWAY.split("@", 1)[1]
    recipients = []
    for path in sorted((demo.folder / "sink").glob("*.eml")):
        parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
        recipients.append(str(parsed["To"]))
    assert "447912345678@" + gateway in recipients  # Aisha's 07912 345678 in E.164


def test_the_patients_replies_reach_each_served_practices_inbox(demo: Demo) -> None:
    for db in (*SERVED, FAILING):
        wait_until(lambda db=db: len(demo.mail(db, "inbox")) == 3, f"3 in {db}", MAIL_SECONDS)
        rows = demo.mail(db, "inbox")
        assert {r["status"] for r in rows} == {"received"}
        linked = {r["from_addr"]: r["patient_id"] for r in rows}
        assert linked["olivia.bennett@example.org"] == 1  # a known patient's address


def test_the_demo_and_training_copies_are_left_alone(demo: Demo) -> None:
    for db in PRACTICES:
        if db in (*SERVED, FAILING):
            continue
        assert demo.mail(db, "outbox") == []
        assert demo.mail(db, "inbox") == []


def test_the_failing_practice_keeps_its_reminders_queued(demo: Demo) -> None:
    wait_until(
        lambda: any(r["last_error"] for r in demo.mail(FAILING, "outbox")),
        "an attempt",
        MAIL_SECONDS,
    )
    rows = demo.mail(FAILING, "outbox")
    assert len(rows) == 4
    assert {r["status"] for r in rows} == {"queued"}
    assert all("535" in (r["last_error"] or "") for r in rows if r["attempts"])


@pytest.fixture
def page(browser: Browser, demo: Demo) -> Iterator[Page]:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(demo.page_url + "/")
        yield page
    finally:
        context.close()


def test_on_the_page_the_failing_practice_flashes_and_its_tooltip_names_smtp(page: Page) -> None:
    failing = page.locator(".indicator", has_text=FAILING)
    expect(failing).to_have_attribute("data-status", "not_available", timeout=CHANGE_MS)
    for db in SERVED:
        expect(page.locator(".indicator", has_text=db)).to_have_attribute(
            "data-status", "running", timeout=CHANGE_MS
        )
    failing.hover()
    expect(page.get_by_role("tooltip", name="Sending (SMTP)")).to_be_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo.png"), full_page=True)


def test_the_printed_hints_name_the_fix_and_every_folder(demo: Demo) -> None:
    printed = "".join(demo.out)
    assert f"setup --db '{FAILING}' --no-input --smtp-password-env DEMO_SMTP_PASSWORD" in printed
    for folder in ("outbox", "sent", "inbox"):
        assert f"mail list --db 'Smile Dental' --folder {folder}" in printed
    assert str(demo.folder / "sink") in printed


def test_a_second_start_on_the_same_folder_adds_no_sample_twice(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    folder = tmp_path_factory.mktemp("demo-again") / "var-demo"
    try:
        first = start_demo(folder)
        try:
            db = SERVED[0]
            wait_until(lambda: len(first.mail(db, "sent")) == 4, "4 sent", MAIL_SECONDS)
            wait_until(lambda: len(first.mail(db, "inbox")) == 3, "3 in inbox", MAIL_SECONDS)
        finally:
            stop_demo(first)
        sink_before = first.sink_message_ids()
        second = start_demo(folder)
        try:
            # The demo seeds before it serves: once it printed its page, anything it
            # added twice would be in the outbox or the IMAP mailbox.
            counts = {f: len(second.mail(db, f)) for f in ("outbox", "sent", "inbox")}
            assert counts == {"outbox": 0, "sent": 4, "inbox": 3}
            assert len(second.mail(FAILING, "outbox")) == 4
            assert len(mailbox_message_ids(folder, samples.slug(db))) == 3
            assert second.sink_message_ids()[: len(sink_before)] == sink_before
        finally:
            stop_demo(second)
        assert "Traceback" not in "".join(second.err)
    finally:
        remove_demo(folder)


def test_a_taken_page_port_moves_the_demos_page_to_a_free_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = load_settings(environ={"EMAIL_SERVICE_HTTP_LISTEN": f"127.0.0.1:{port}"})
        http, note = page_settings(settings, None)
    assert (http.listen, f"Port {port}" in note) == ("127.0.0.1:0", True)


def test_a_free_page_port_is_kept() -> None:
    settings = load_settings(environ={"EMAIL_SERVICE_HTTP_LISTEN": "127.0.0.1:0"})
    assert page_settings(settings, None) == (settings.http, "")


def test_without_dovecot_the_demo_says_how_to_get_it_and_runs_without_incoming_mail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no Dovecot on this machine (its path points nowhere), and the service itself
    # replaced by one that reports ready and stops (this test is about the demo's set-up),
    monkeypatch.setattr(imap_server, "DOVECOT", str(tmp_path / "no-dovecot"))
    served: list[Settings] = []  # what the demo would have served

    def serve_once(settings: Settings, *, on_ready: Callable[[str], None]) -> int:
        served.append(settings)
        on_ready("http://127.0.0.1:1/")
        return 0

    monkeypatch.setattr(demo_command, "run_service", serve_once)
    folder = tmp_path / "demo"
    code = main(["demo", "--folder", str(folder), "--listen", "127.0.0.1:0"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "Dovecot is not installed" in printed
    assert "apt-get install dovecot-imapd" in printed
    assert len(served) == 1
    engine = practice_db.make_engine(f"sqlite:///{folder / 'practices' / 'Smile Dental.sqlite3'}")
    with engine.connect() as conn:
        imap_enabled = conn.execute(select(email_settings.c.imap_enabled)).scalar_one()
        queued = conn.execute(select(email_messages.c.id)).all()
    engine.dispose()
    assert (imap_enabled, len(queued)) == (False, 4)
