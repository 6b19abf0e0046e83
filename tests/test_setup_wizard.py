"""The Email Setup Wizard's flow, with a scripted prompt, against real servers.

SMTP: aiosmtpd (``tests.smtp_servers``) with STARTTLS and AUTH; IMAP: the session's Dovecot
(``tests.conftest_imap``); both with the throwaway authority that ``mail_settings.ca_file``
trusts. Every error path (wrong password, certificate not trusted, port closed, host
unreachable, host not found, invalid address) is checked by the words a person sees.
The command line's flag-driven mode is tested in-process through ``supervisor.cli.main``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from actors.mail.settings import EmailSettings
from actors.practice_schema import init_practice_database
from config.settings import MailSettings, ServiceSettings
from supervisor import exit_codes
from supervisor.cli import main
from supervisor.discovery import DatabaseInfo
from supervisor.eligibility import LOGIN_WARNING, Eligibility
from supervisor.setup.answers import AnswerError, check_address, parse_port, pick, port_for
from supervisor.setup.checks import CheckResult, ProbeChecker, advice_for
from supervisor.setup.draft import build_draft, lenient_settings
from supervisor.setup.overview import first_screen
from supervisor.setup.store import read_row, read_saved, save_settings
from supervisor.setup.wizard import Outcome, Wizard, result_lines
from tests.conftest import host_secrets
from tests.dovecot import Dovecot
from tests.fault_proxy import FaultProxy
from tests.smtp_servers import RecordingSmtpServer, free_port
from tests.tls_certs import CertificateSet

pytest_plugins = ["tests.conftest_imap"]

ADDRESS = "reception@smile.example"
SMTP_PASSWORD = "smtp-Secret-1"
WRONG_PASSWORD = "not-the-Password-9"


class ScriptedPrompt:
    """A ``Prompt`` that answers from a script of (words the question contains, answer)
    and keeps everything shown, so a test can read what a person would have read."""

    def __init__(self, script: Sequence[tuple[str, str]]) -> None:
        self.script = list(script)
        self.shown: list[str] = []
        self.asked: list[str] = []
        self.choices: dict[str, tuple[str, ...]] = {}

    def _next(self, text: str) -> str:
        self.asked.append(text)
        assert self.script, f"the wizard asked {text!r} after the script ended"
        expected, answer = self.script.pop(0)
        assert expected in text, (
            f"expected a question about {expected!r}, got {text!r}; the screen:\n{self.screen}"
        )
        return answer

    def ask(self, text: str, default: str = "") -> str:
        return self._next(text) or default

    def ask_secret(self, text: str) -> str:
        return self._next(text)

    def choose(self, text: str, choices: Sequence[str], default: str) -> str:
        self.choices[text] = tuple(choices)
        answer = self._next(text) or default
        assert answer in choices, f"{answer!r} is not one of {choices}"
        return answer

    def confirm(self, text: str, default: bool) -> bool:
        answer = self._next(text)
        return default if not answer else answer == "y"

    def say(self, text: str) -> None:
        self.shown.append(text)

    @property
    def screen(self) -> str:
        return "\n".join(self.shown)


# --- fixtures ----------------------------------------------------------------------


@pytest.fixture
def smtp_server(imap_certs: CertificateSet) -> Iterator[RecordingSmtpServer]:
    """aiosmtpd with STARTTLS (certificate by the test authority) and one user."""
    server = RecordingSmtpServer("starttls", imap_certs, {ADDRESS: SMTP_PASSWORD}).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def practice_url(tmp_path: Path) -> str:
    folder = tmp_path / "practices"
    folder.mkdir()
    url = f"sqlite:///{folder / 'Smile Dental.sqlite3'}"
    init_practice_database(url, practice_name="Smile Dental")
    return url


def sending(server: RecordingSmtpServer, password: str = SMTP_PASSWORD) -> EmailSettings:
    return EmailSettings(
        from_address=ADDRESS,
        from_name="Smile Dental",
        smtp_host="127.0.0.1",
        smtp_port=server.port,
        smtp_security="starttls",
        smtp_username=ADDRESS,
        smtp_password=password,
    )


def receiving(
    base: EmailSettings, dovecot: Dovecot, user: str, *, security: str = "tls", **changes: Any
) -> EmailSettings:
    values: dict[str, Any] = {
        "imap_enabled": True,
        "imap_host": "127.0.0.1",
        "imap_port": dovecot.tls_port if security == "tls" else dovecot.port,
        "imap_security": security,
        "imap_username": user,
        "imap_password": dovecot.passwords[user],
    }
    values.update(changes)
    return dataclasses.replace(base, **values)


def shown_by_test(settings: EmailSettings, mail: MailSettings) -> str:
    """What a person reads after the wizard tests ``settings``."""
    prompt = ScriptedPrompt([])
    Wizard(prompt, ProbeChecker(mail), lambda _s: None).test(settings)
    return prompt.screen


# --- answers (pure) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ("", "An email address is needed"),
        ("reception at smile dental", "it needs an @"),
        ("reception@smile", "is not a mail domain (it needs a dot"),
        ("Smile Dental <reception@smile.example>", "write only the address"),
        ("recep tion@smile.example", "the part before the @ may hold only"),
        ("reception@smile..example", "is not a mail domain"),
    ],
)
def test_an_invalid_address_is_refused_with_words_that_say_what_to_write(
    answer: str, words: str
) -> None:
    with pytest.raises(AnswerError, match=r"reception@smiledental\.co\.uk|needs a dot") as caught:
        check_address(answer)
    assert words in str(caught.value)


def test_a_plain_address_is_accepted_trimmed() -> None:
    assert (
        check_address("  jo.smith+mail@smile-dental.co.uk ") == "jo.smith+mail@smile-dental.co.uk"
    )


@pytest.mark.parametrize("answer", ["0", "65536", "five", "", "-1"])
def test_a_port_outside_1_to_65535_is_refused(answer: str) -> None:
    with pytest.raises(AnswerError, match="is not a port number"):
        parse_port(answer)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("", "starttls"),
        ("TLS", "tls"),
        ("3", "tls"),
        ("st", "starttls"),
        ("n", "none"),
        ("x", None),
    ],
)
def test_a_choice_is_read_from_its_name_prefix_or_number(answer: str, expected: str | None) -> None:
    assert pick(answer, ("none", "starttls", "tls"), "starttls") == expected


@pytest.mark.parametrize(
    ("kind", "security", "current", "offered"),
    [
        ("smtp", "tls", 587, 465),
        ("smtp", "starttls", 465, 587),
        ("smtp", "starttls", 2525, 2525),
        ("imap", "tls", 143, 993),
        ("imap", "starttls", 993, 143),
        ("imap", "none", 143, 143),
    ],
)
def test_the_offered_port_follows_a_changed_security(
    kind: str, security: str, current: int, offered: int
) -> None:
    assert port_for(kind, security, current) == offered


# --- the draft (pure) ---------------------------------------------------------------


def test_a_known_provider_fills_the_servers_of_a_new_set_up() -> None:
    draft = build_draft(EmailSettings(), {"from_address": "smile@gmail.com"})
    assert draft.provider is not None
    assert draft.provider.key == "gmail"
    s = draft.settings
    assert (s.smtp_host, s.smtp_port, s.smtp_security) == ("smtp.gmail.com", 587, "starttls")
    assert (s.imap_host, s.imap_port, s.imap_security) == ("imap.gmail.com", 993, "tls")
    assert (s.smtp_username, s.imap_username) == ("smile@gmail.com", "smile@gmail.com")


def test_flags_override_the_provider() -> None:
    draft = build_draft(
        EmailSettings(),
        {"from_address": "smile@gmail.com", "smtp_port": 465, "smtp_security": "tls"},
    )
    assert (draft.settings.smtp_host, draft.settings.smtp_port) == ("smtp.gmail.com", 465)
    assert draft.settings.smtp_security == "tls"


def test_a_saved_set_up_at_the_same_domain_is_kept() -> None:
    saved = EmailSettings(from_address="a@gmail.com", smtp_host="relay.smile.example", smtp_port=25)
    draft = build_draft(saved, {"from_address": "b@gmail.com"})
    assert draft.provider is None
    assert draft.settings.smtp_host == "relay.smile.example"


def test_a_named_provider_serves_an_address_on_the_practices_own_domain() -> None:
    draft = build_draft(EmailSettings(), {"from_address": ADDRESS}, "office365")
    assert draft.settings.smtp_host == "smtp.office365.com"
    assert draft.settings.imap_host == "outlook.office365.com"


def test_an_unusable_saved_column_is_replaced_by_its_default_and_named() -> None:
    settings, problems = lenient_settings({"smtp_security": "ssl", "smtp_host": "mail.example"})
    assert (settings.smtp_security, settings.smtp_host) == ("starttls", "mail.example")
    assert len(problems) == 1
    assert "email_settings.smtp_security is 'ssl'" in problems[0]


def test_a_bad_sms_gateway_in_the_flags_is_refused_naming_the_column() -> None:
    with pytest.raises(AnswerError, match=r"email_settings\.sms_gateway"):
        build_draft(
            EmailSettings(), {"sms_enabled": True, "sms_gateway": "email:{phone}@x.example"}
        )


# --- what the screen shows (pure) ---------------------------------------------------


def _info(name: str, eligible: bool, reason: str) -> DatabaseInfo:
    return DatabaseInfo(
        name=name,
        url=f"sqlite:////srv/{name}.sqlite3",
        is_practice=True,
        practice_name=name,
        registered_server=None,
        eligibility=Eligibility(eligible, reason),
    )


def test_the_first_screen_shows_the_service_settings_and_every_database() -> None:
    smile = _info("Smile Dental", True, "name contains none of demo")
    demo = _info("Demo Practice", False, "name contains 'demo'")
    service = ServiceSettings("SRV1", True, "sqlite:///var/events.sqlite3")
    text = "\n".join(
        first_screen(service, "postgresql://svc:pa55word@db.example/", [demo, smile], smile)
    )
    assert "service.server_id):   SRV1" in text
    assert "service.genuine_server_check): on" in text
    assert "postgresql://svc:***@db.example/" in text
    assert "pa55word" not in text
    assert "Demo Practice  no      name contains 'demo'" in text
    assert LOGIN_WARNING not in text


def test_the_first_screen_warns_like_the_login_check_for_a_database_not_served() -> None:
    demo = _info("Demo Practice", False, "name contains 'demo'")
    service = ServiceSettings("SRV1", False, "sqlite:///var/events.sqlite3")
    text = "\n".join(first_screen(service, "sqlite:////srv", [demo], demo))
    assert (
        f"{LOGIN_WARNING}: the service does not send or receive email for 'Demo Practice'" in text
    )


def test_results_show_ok_or_the_reason_and_what_to_do() -> None:
    lines = result_lines(
        (
            CheckResult("smtp", True),
            CheckResult(
                "imap",
                False,
                "wrong user name or password",
                advice_for("wrong user name or password"),
            ),
        )
    )
    assert lines[0].split() == ["SMTP", "(sending)", "ok"]
    assert "IMAP (receiving)  FAILED: wrong user name or password" in lines[1]
    assert "What to do: Check the user name and password" in lines[2]


# --- error paths against real servers: the words a person sees ---------------------


def test_a_wrong_smtp_password_is_reported_as_such(
    smtp_server: RecordingSmtpServer, mail_settings: MailSettings
) -> None:
    text = shown_by_test(sending(smtp_server, WRONG_PASSWORD), mail_settings)
    assert "SMTP (sending)    FAILED: wrong user name or password" in text
    assert "What to do: Check the user name and password" in text
    assert WRONG_PASSWORD not in text


def test_a_wrong_imap_password_is_reported_as_such(
    smtp_server: RecordingSmtpServer,
    dovecot: Dovecot,
    imap_user: str,
    mail_settings: MailSettings,
) -> None:
    settings = receiving(sending(smtp_server), dovecot, imap_user, imap_password=WRONG_PASSWORD)
    text = shown_by_test(settings, mail_settings)
    assert "SMTP (sending)    ok" in text
    assert f"IMAP (receiving)  FAILED: wrong user name or password for '{imap_user}'" in text
    assert WRONG_PASSWORD not in text


def test_an_untrusted_certificate_is_reported_for_smtp_and_imap(
    smtp_server: RecordingSmtpServer,
    dovecot: Dovecot,
    imap_user: str,
    mail_settings: MailSettings,
) -> None:
    untrusting = dataclasses.replace(mail_settings, ca_file="")
    text = shown_by_test(receiving(sending(smtp_server), dovecot, imap_user), untrusting)
    assert "SMTP (sending)    FAILED: certificate not trusted for 127.0.0.1" in text
    assert (
        f"IMAP (receiving)  FAILED: the certificate of 127.0.0.1:{dovecot.tls_port} is not trusted"
        in text
    )
    assert text.count("What to do: This computer does not trust the server's certificate") == 2


def test_a_closed_port_is_reported_for_smtp_and_imap(
    smtp_server: RecordingSmtpServer,
    dovecot: Dovecot,
    imap_user: str,
    mail_settings: MailSettings,
) -> None:
    closed = free_port()
    settings = receiving(
        dataclasses.replace(sending(smtp_server), smtp_port=closed),
        dovecot,
        imap_user,
        imap_port=closed,
    )
    text = shown_by_test(settings, mail_settings)
    assert (
        f"SMTP (sending)    FAILED: port closed: nothing accepts connections at 127.0.0.1:{closed}"
        in text
    )
    assert f"IMAP (receiving)  FAILED: port {closed} on 127.0.0.1 is closed" in text
    assert text.count("What to do: Nothing accepts connections on that port") == 2


def test_a_host_that_does_not_answer_is_reported_as_unreachable(
    smtp_server: RecordingSmtpServer,
    dovecot: Dovecot,
    imap_user: str,
    mail_settings: MailSettings,
) -> None:
    quick = dataclasses.replace(mail_settings, io_timeout_seconds=1.0)
    with (
        FaultProxy("127.0.0.1", smtp_server.port) as smtp_hole,
        FaultProxy("127.0.0.1", dovecot.port) as imap_hole,
    ):
        smtp_hole.black_hole(True)
        imap_hole.black_hole(True)
        settings = receiving(
            dataclasses.replace(sending(smtp_server), smtp_port=smtp_hole.port),
            dovecot,
            imap_user,
            security="none",
            imap_port=imap_hole.port,
        )
        text = shown_by_test(settings, quick)
    assert f"SMTP (sending)    FAILED: no answer from 127.0.0.1:{smtp_hole.port} in 1 s" in text
    assert f"IMAP (receiving)  FAILED: no answer from 127.0.0.1:{imap_hole.port} in 1 s" in text
    assert text.count("What to do: The server did not answer: the host is unreachable") == 2


def test_a_host_name_that_does_not_exist_is_reported_as_not_found(
    mail_settings: MailSettings,
) -> None:
    settings = EmailSettings(
        from_address=ADDRESS,
        smtp_host="mail.no-such-host.invalid",
        smtp_security="none",
        imap_enabled=True,
        imap_host="imap.no-such-host.invalid",
        imap_security="none",
    )
    text = shown_by_test(settings, mail_settings)
    assert "SMTP (sending)    FAILED: host not found: mail.no-such-host.invalid" in text
    assert "IMAP (receiving)  FAILED: the host 'imap.no-such-host.invalid' was not found" in text
    assert text.count("What to do: The host name was not found: check its spelling") == 2


# --- the interactive flow -----------------------------------------------------------


def _draft(url: str) -> EmailSettings:
    saved, _problems = lenient_settings(read_row(url) or {})
    return build_draft(saved, {}).settings


def test_a_new_practice_is_set_up_tested_and_saved(
    practice_url: str,
    smtp_server: RecordingSmtpServer,
    dovecot: Dovecot,
    imap_user: str,
    mail_settings: MailSettings,
) -> None:
    imap_password = dovecot.passwords[imap_user]
    prompt = ScriptedPrompt(
        [
            ("From address", ADDRESS),
            ("Sender name", "Smile Dental"),
            ("Mail provider", "other"),
            ("SMTP server", "127.0.0.1"),
            ("SMTP security", "starttls"),
            ("SMTP port", str(smtp_server.port)),
            ("SMTP user name", ""),
            ("SMTP password", SMTP_PASSWORD),
            ("Import incoming email over IMAP?", "y"),
            ("IMAP server", "127.0.0.1"),
            ("IMAP security", "tls"),
            ("IMAP port", str(dovecot.tls_port)),
            ("IMAP user name", imap_user),
            ("IMAP password", imap_password),
            ("Folder to import from", ""),
            ("After import", "move"),
            ("Move it to which folder", "Imported"),
            ("Send text messages (SMS)?", "y"),
            ("SMS gateway", "email:{number}@sms.example.net"),
            ("Country of numbers", "gb"),
            ("Save these settings?", "y"),
        ]
    )
    wizard = Wizard(
        prompt,
        ProbeChecker(mail_settings),
        lambda s: save_settings(practice_url, s, host_secrets()),
    )
    outcome = wizard.run(_draft(practice_url))
    row, _unreadable = read_saved(practice_url, host_secrets())
    assert outcome.saved
    assert outcome.all_passed
    assert row is not None
    assert (row["from_address"], row["smtp_port"], row["smtp_password"]) == (
        ADDRESS,
        smtp_server.port,
        SMTP_PASSWORD,
    )
    assert (row["imap_enabled"], row["imap_port"], row["imap_username"]) == (
        True,
        dovecot.tls_port,
        imap_user,
    )
    assert (row["imap_password"], row["imap_after_import"]) == (imap_password, "move:Imported")
    assert (row["sms_enabled"], row["sms_region"]) == (True, "GB")
    assert "SMS               ok (texts go out as email through the SMTP server)" in prompt.screen
    assert SMTP_PASSWORD not in prompt.screen
    assert imap_password not in prompt.screen


def _smtp_only_script(password: str, address: str = ADDRESS) -> list[tuple[str, str]]:
    return [
        ("From address", address),
        ("Sender name", ""),
        ("SMTP server", ""),
        ("SMTP security", ""),
        ("SMTP port", ""),
        ("SMTP user name", ""),
        ("SMTP password", password),
        ("Import incoming email over IMAP?", "n"),
        ("Send text messages (SMS)?", "n"),
    ]


def test_a_wrong_password_is_caught_and_corrected_before_saving(
    practice_url: str, smtp_server: RecordingSmtpServer, mail_settings: MailSettings
) -> None:
    prompt = ScriptedPrompt(
        [
            *_smtp_only_script(WRONG_PASSWORD),
            ("What now?", "correct"),
            ("Correct which part?", ""),
            ("SMTP server", ""),
            ("SMTP security", ""),
            ("SMTP port", ""),
            ("SMTP user name", ""),
            ("SMTP password (Enter keeps the saved one)", SMTP_PASSWORD),
            ("Save these settings?", "y"),
        ]
    )
    saves: list[EmailSettings] = []
    outcome = Wizard(prompt, ProbeChecker(mail_settings), saves.append).run(
        sending(smtp_server, "")
    )
    assert outcome.saved
    assert [s.smtp_password for s in saves] == [SMTP_PASSWORD]
    assert "FAILED: wrong user name or password" in prompt.screen
    assert WRONG_PASSWORD not in prompt.screen


def test_quitting_after_a_failed_test_saves_nothing(
    smtp_server: RecordingSmtpServer, mail_settings: MailSettings
) -> None:
    prompt = ScriptedPrompt([*_smtp_only_script(WRONG_PASSWORD), ("What now?", "quit")])
    saves: list[EmailSettings] = []
    outcome = Wizard(prompt, ProbeChecker(mail_settings), saves.append).run(
        sending(smtp_server, "")
    )
    assert (outcome.saved, saves) == (False, [])
    assert "Nothing was saved." in prompt.shown


def test_saving_failed_settings_is_offered_only_when_forced(
    smtp_server: RecordingSmtpServer, mail_settings: MailSettings
) -> None:
    unforced = ScriptedPrompt([*_smtp_only_script(WRONG_PASSWORD), ("What now?", "quit")])
    Wizard(unforced, ProbeChecker(mail_settings), lambda _s: None).run(sending(smtp_server, ""))
    forced = ScriptedPrompt([*_smtp_only_script(WRONG_PASSWORD), ("What now?", "save anyway")])
    saves: list[EmailSettings] = []
    outcome = Wizard(forced, ProbeChecker(mail_settings), saves.append, force=True).run(
        sending(smtp_server, "")
    )
    assert "save anyway" not in unforced.choices["What now?"]
    assert "--force" in unforced.screen
    assert outcome.saved
    assert saves[0].smtp_password == WRONG_PASSWORD


def test_an_invalid_address_is_explained_and_asked_again(
    smtp_server: RecordingSmtpServer, mail_settings: MailSettings
) -> None:
    script = _smtp_only_script(SMTP_PASSWORD)
    prompt = ScriptedPrompt(
        [
            ("From address", "reception at smile"),
            ("From address", "reception@smile"),
            *script,
            ("Save these settings?", "n"),
        ]
    )
    outcome: Outcome = Wizard(prompt, ProbeChecker(mail_settings), lambda _s: None).run(
        sending(smtp_server, "")
    )
    assert "'reception at smile' is not an email address: it needs an @" in prompt.screen
    assert (
        "'reception@smile' is not an email address: 'smile' is not a mail domain" in prompt.screen
    )
    assert outcome.settings.from_address == ADDRESS
    assert not outcome.saved


def test_a_bad_port_answer_is_explained_and_asked_again(
    smtp_server: RecordingSmtpServer, mail_settings: MailSettings
) -> None:
    script = _smtp_only_script(SMTP_PASSWORD)
    port_at = next(i for i, (q, _a) in enumerate(script) if q == "SMTP port")
    script[port_at : port_at + 1] = [("SMTP port", "99999"), ("SMTP port", "")]
    prompt = ScriptedPrompt([*script, ("Save these settings?", "n")])
    Wizard(prompt, ProbeChecker(mail_settings), lambda _s: None).run(sending(smtp_server, ""))
    assert "'99999' is not a port number: write a number from 1 to 65535." in prompt.shown


def test_a_provider_address_fills_in_its_servers_as_defaults(mail_settings: MailSettings) -> None:
    prompt = ScriptedPrompt([("From address", "smile@gmail.com"), ("Sender name", "")])
    settings = Wizard(prompt, ProbeChecker(mail_settings), lambda _s: None).ask_sender(
        EmailSettings()
    )
    assert (settings.smtp_host, settings.imap_host) == ("smtp.gmail.com", "imap.gmail.com")
    assert "Gmail / Google Workspace: its server settings are filled in below" in prompt.screen


# --- the command line without a terminal -------------------------------------------


@pytest.fixture
def config(tmp_path: Path, practice_url: str, mail_settings: MailSettings) -> Path:
    folder = Path(practice_url.removeprefix("sqlite:///")).parent
    init_practice_database(f"sqlite:///{folder / 'Demo Practice.sqlite3'}", practice_name="Demo")
    path = tmp_path / "service.toml"
    path.write_text(
        f'[service]\nserver_id = "SRV1"\n'
        f"[databases]\nserver_url = {json.dumps(f'sqlite:///{folder}')}\n"
        f"[mail]\nca_file = {json.dumps(mail_settings.ca_file)}\nio_timeout_seconds = 10\n"
    )
    return path


def setup_cli(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["--config", str(config), "setup", "--no-input", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def smtp_flags(server: RecordingSmtpServer) -> list[str]:
    return [
        "--from-address", ADDRESS,
        "--smtp-host", "127.0.0.1",
        "--smtp-port", str(server.port),
        "--smtp-security", "starttls",
        "--smtp-username", ADDRESS,
        "--smtp-password-env", "PES_TEST_SMTP_PASSWORD",
    ]  # fmt: skip


def test_flags_with_save_store_settings_that_pass(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    config: Path,
    practice_url: str,
    smtp_server: RecordingSmtpServer,
) -> None:
    monkeypatch.setenv("PES_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    code, out, err = setup_cli(
        capsys, config, "--db", "Smile Dental", *smtp_flags(smtp_server), "--save"
    )
    row, _unreadable = read_saved(practice_url, host_secrets())
    assert code == exit_codes.OK
    assert row is not None
    assert (row["smtp_host"], row["smtp_password"]) == ("127.0.0.1", SMTP_PASSWORD)
    assert "SMTP (sending)    ok" in out
    assert "\nSaved." in out
    assert SMTP_PASSWORD not in out + err


def test_flags_with_save_store_nothing_when_a_test_fails(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    config: Path,
    practice_url: str,
    smtp_server: RecordingSmtpServer,
) -> None:
    monkeypatch.setenv("PES_TEST_SMTP_PASSWORD", WRONG_PASSWORD)
    before = read_row(practice_url)
    code, out, err = setup_cli(
        capsys, config, "--db", "Smile Dental", *smtp_flags(smtp_server), "--save"
    )
    assert code == 1
    assert read_row(practice_url) == before
    assert "FAILED: wrong user name or password" in out
    assert "Nothing was saved: 1 test(s) failed" in out
    assert WRONG_PASSWORD not in out + err


def test_save_with_force_stores_settings_that_failed(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    config: Path,
    practice_url: str,
    smtp_server: RecordingSmtpServer,
) -> None:
    monkeypatch.setenv("PES_TEST_SMTP_PASSWORD", WRONG_PASSWORD)
    code, out, _err = setup_cli(
        capsys, config, "--db", "Smile Dental", *smtp_flags(smtp_server), "--save", "--force"
    )
    row, _unreadable = read_saved(practice_url, host_secrets())
    assert code == exit_codes.OK
    assert row is not None
    assert row["smtp_password"] == WRONG_PASSWORD
    assert "Saved although 1 test(s) failed (--force)." in out


def test_json_prints_one_object_per_component(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    config: Path,
    smtp_server: RecordingSmtpServer,
) -> None:
    monkeypatch.setenv("PES_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    code, out, _err = setup_cli(
        capsys, config, "--db", "Smile Dental", *smtp_flags(smtp_server), "--json"
    )
    assert code == exit_codes.OK
    assert json.loads(out) == [
        {"component": "smtp", "ok": True, "reason": "", "advice": "", "saved": False}
    ]


def test_a_password_flag_is_refused_without_repeating_it(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "--config",
                str(config),
                "setup",
                "--db",
                "Smile Dental",
                "--smtp-password",
                "hunter22",
            ]
        )
    _out, err = capsys.readouterr()
    assert exited.value.code == exit_codes.USAGE
    assert "--smtp-password is not accepted" in err
    assert "--smtp-password-env" in err
    assert "hunter22" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_password_variable_that_is_not_set_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, config: Path
) -> None:
    monkeypatch.delenv("PES_TEST_UNSET", raising=False)
    code, _out, err = setup_cli(
        capsys, config, "--db", "Smile Dental", "--smtp-password-env", "PES_TEST_UNSET"
    )
    assert code == exit_codes.USAGE
    assert err.strip() == (
        "email-service: --smtp-password-env names PES_TEST_UNSET, "
        "which is not set in the environment (exit 2 USAGE)"
    )


def test_an_invalid_address_flag_stops_with_one_line(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    code, out, err = setup_cli(
        capsys, config, "--db", "Smile Dental", "--from-address", "reception@smile"
    )
    assert code == exit_codes.USAGE
    assert out == ""
    assert err.strip() == (
        "email-service: cannot set up 'Smile Dental': 'reception@smile' is not an email "
        "address: 'smile' is not a mail domain (it needs a dot, like smiledental.co.uk). "
        "(exit 2 USAGE)"
    )


def test_an_unknown_database_is_an_error(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    code, _out, err = setup_cli(capsys, config, "--db", "Smile Dentl")
    assert code == exit_codes.NO_INPUT
    assert "no database 'Smile Dentl' on the server; did you mean 'Smile Dental'?" in err


def test_a_database_not_served_gets_the_login_warning(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    code, out, _err = setup_cli(capsys, config, "--db", "Demo Practice")
    assert code == 1  # no mail server is set yet: the SMTP test fails
    assert f"{LOGIN_WARNING}: the service does not send or receive email for 'Demo Practice'" in out
    assert "FAILED: no mail server is set (smtp_host is empty)" in out
