"""``email-service key init|rotate|status``: the key file and its rotation.

Real SQLite folders for the command line, PostgreSQL and MariaDB for the re-encryption
itself (on the shared servers only this test's databases are rotated: ``rotate`` is given
just them). The interruption test stops a rotation after its first database, as Ctrl-C or
a crash would, and checks nothing was lost.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.mail.settings import SECRET_FIELDS
from actors.mail.stored_secrets import Secrets
from actors.practice_db import make_engine
from actors.practice_schema import init_practice_database
from config.key_file import read_key_ring
from config.secret_box import KeyRing, decrypt, key_id_in
from supervisor import exit_codes
from supervisor.cli import main
from supervisor.discovery import discover
from supervisor.key_rotation import DatabaseOutcome, rotate
from tests.conftest import KEY_FILE_VARIABLE
from tests.mail_helpers import wait_until, write_email_settings
from tests.servers import MARIADB_ADMIN_URL, POSTGRES_ADMIN_URL, named_databases, server_url
from tests.smtp_servers import free_port
from tests.test_secrets_at_rest import raw_settings

SECRETS = {
    "smtp_password": "Canary-SMTP-0a1b",
    "imap_password": "Canary-IMAP-2c3d",
    "oauth_refresh_token": "Canary-RT-4e5f",
}
NAMES = ("Alpha Dental", "Beta Dental", "Gamma Dental")
EXE = Path(sys.executable).with_name("email-service")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The key file, in the configuration and in the variable that overrides it."""
    path = tmp_path / "keys" / "secret.key"
    monkeypatch.setenv(KEY_FILE_VARIABLE, str(path))
    return path


@pytest.fixture
def folder(tmp_path: Path, key_file: Path) -> Path:
    """Three SQLite practice databases, each with secrets saved by the wizard's door."""
    practices = tmp_path / "practices"
    practices.mkdir()
    secrets = Secrets.for_writing(key_file)
    for name in NAMES:
        _seal(f"sqlite:///{practices / (name + '.sqlite3')}", name, secrets)
    return practices


def _seal(url: str, name: str, secrets: Secrets) -> None:
    init_practice_database(url, practice_name=name)
    engine = make_engine(url, pooled=False)
    try:
        write_email_settings(engine, **secrets.seal_row(SECRETS))
    finally:
        engine.dispose()


@pytest.fixture
def config(tmp_path: Path, key_file: Path) -> Path:
    path = tmp_path / "c.toml"
    practices = f"sqlite:///{tmp_path / 'practices'}"
    path.write_text(
        f"[service]\nkey_file = {json.dumps(str(key_file))}\n"
        f"[databases]\nserver_url = {json.dumps(practices)}\n"
    )
    return path


def opened(url: str, ring: KeyRing) -> dict[str, str]:
    row = raw_settings(url)
    return {c: decrypt(ring, c, row[c]) for c in SECRETS}


def key_ids(url: str) -> set[str | None]:
    row = raw_settings(url)
    return {key_id_in(row[c]) for c in SECRETS}


# --- init ---------------------------------------------------------------------------------


def test_key_init_makes_a_file_only_its_account_may_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "var" / "secret.key"
    monkeypatch.setenv("EMAIL_SERVICE_SERVICE_KEY_FILE", str(path))
    code, out, err = run(capsys, "key", "init")
    assert (code, err) == (exit_codes.OK, "")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ring = read_key_ring(path)
    assert ring.current is not None
    assert f"(key id {ring.current.key_id})" in out


def test_key_init_never_replaces_a_key(
    capsys: pytest.CaptureFixture[str], config: Path, key_file: Path
) -> None:
    key_file.parent.mkdir(parents=True)
    run(capsys, "--config", str(config), "key", "init")
    before = key_file.read_bytes()
    code, _, err = run(capsys, "--config", str(config), "key", "init")
    assert code == exit_codes.CONFIG
    assert err.startswith(
        f"email-service: the key file {key_file} already exists; "
        "email-service key rotate replaces its key"
    )
    assert key_file.read_bytes() == before


def test_setup_makes_the_key_file_when_it_saves_a_secret(
    capsys: pytest.CaptureFixture[str],
    config: Path,
    key_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "practices").mkdir()
    init_practice_database(
        f"sqlite:///{tmp_path / 'practices' / 'Smile.sqlite3'}", practice_name="Smile"
    )
    monkeypatch.setenv("PES_KEYS_PASSWORD", "Canary-0600")
    _, _, err = run(
        capsys, "--config", str(config), "setup", "--db", "Smile", "--no-input",
        "--smtp-host", "127.0.0.1", "--smtp-port", str(free_port()), "--smtp-security",
        "none", "--smtp-username", "u", "--smtp-password-env", "PES_KEYS_PASSWORD",
        "--save", "--force",
    )  # fmt: skip
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert f"Made the key file {key_file} (key id " in err


# --- faults, one line each ----------------------------------------------------------------


def test_a_key_file_others_may_read_is_refused_saying_so(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path, key_file: Path
) -> None:
    key_file.chmod(0o644)
    code, _, err = run(capsys, "--config", str(config), "key", "rotate")
    assert code == exit_codes.CONFIG
    assert err == (
        f"email-service: the key file {key_file} may be read by other accounts (mode 0644); "
        f"make it readable only by the service's account: chmod 600 {key_file} (exit 78 CONFIG)\n"
    )


def test_setup_refuses_a_key_file_others_may_read_before_testing_anything(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path, key_file: Path
) -> None:
    key_file.chmod(0o640)
    code, out, err = run(
        capsys, "--config", str(config), "setup", "--db", "Alpha Dental", "--no-input"
    )
    assert (code, out) == (exit_codes.CONFIG, "")
    assert err.startswith(f"email-service: the key file {key_file} may be read by other ")
    assert err.count("\n") == 1


def test_a_missing_key_file_is_one_line(
    capsys: pytest.CaptureFixture[str], config: Path, key_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "practices").mkdir()
    code, _, err = run(capsys, "--config", str(config), "key", "rotate")
    assert code == exit_codes.CONFIG
    assert err.startswith(
        f"email-service: the key file {key_file} is missing (email-service key init"
    )
    assert err.count("\n") == 1


def test_a_damaged_key_file_says_which_line(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path, key_file: Path
) -> None:
    text = key_file.read_text()
    key_file.write_text(text.replace("current ", "current  "))
    code, _, err = run(capsys, "--config", str(config), "key", "rotate")
    assert code == exit_codes.CONFIG
    assert err.startswith(f"email-service: the key file {key_file} is damaged: line 4 is not ")


def test_a_key_file_that_is_a_folder_is_one_line(
    capsys: pytest.CaptureFixture[str], config: Path, key_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "practices").mkdir()
    key_file.mkdir(parents=True)
    code, _, err = run(capsys, "--config", str(config), "key", "rotate")
    assert (code, err) == (
        exit_codes.CONFIG,
        f"email-service: the key file {key_file} is a folder, not a file (exit 78 CONFIG)\n",
    )


def test_key_without_a_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["key"])
    assert exited.value.code == exit_codes.USAGE
    assert "required: SUBCOMMAND" in capsys.readouterr().err


def test_key_help_names_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["key", "--help"])
    out = capsys.readouterr().out
    assert [word in out for word in ("init", "rotate", "status")] == [True, True, True]


# --- status -------------------------------------------------------------------------------


def test_key_status_counts_each_databases_secrets_by_how_they_are_stored(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path, key_file: Path
) -> None:
    plain = f"sqlite:///{folder / 'Plain Dental.sqlite3'}"
    init_practice_database(plain, practice_name="Plain Dental")
    foreign = f"sqlite:///{folder / 'Foreign Dental.sqlite3'}"
    _seal(foreign, "Foreign Dental", Secrets.for_writing(folder.parent / "other.key"))
    engine = make_engine(plain, pooled=False)
    try:
        write_email_settings(engine, smtp_password="Canary-plain-77")
    finally:
        engine.dispose()
    code, out, err = run(capsys, "--config", str(config), "key", "status", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == exit_codes.DATA_ERROR, err
    assert err.startswith("email-service: 1 practice database(s) hold secrets this host's ")
    assert {n: (r["current"], r["plain"], len(r["unreadable"])) for n, r in rows.items()} == {
        "Alpha Dental": (3, 0, 0),
        "Beta Dental": (3, 0, 0),
        "Gamma Dental": (3, 0, 0),
        "Plain Dental": (0, 1, 0),
        "Foreign Dental": (0, 0, 3),
    }
    assert "was encrypted with another key" in rows["Foreign Dental"]["unreadable"][0]
    assert "Canary" not in out + err


# --- rotate -------------------------------------------------------------------------------


def test_rotate_reencrypts_every_practice_database_and_drops_the_old_key(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path, key_file: Path
) -> None:
    old = read_key_ring(key_file)
    code, out, err = run(capsys, "--config", str(config), "key", "rotate")
    new = read_key_ring(key_file)
    assert (code, err) == (exit_codes.OK, "")
    assert new.previous == ()
    assert new.current != old.current
    for name in NAMES:
        url = f"sqlite:///{folder / (name + '.sqlite3')}"
        assert key_ids(url) == {new.current.key_id}  # type: ignore[union-attr]
        assert opened(url, new) == SECRETS
    assert "3 re-encrypted" in out
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_an_interrupted_rotation_loses_nothing_and_the_next_one_finishes(
    config: Path, folder: Path, key_file: Path
) -> None:
    infos = discover(f"sqlite:///{folder}", server_id="SRV", genuine_server_check=False)

    def stop_after_the_first(outcome: DatabaseOutcome) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rotate(key_file, infos, stop_after_the_first)
    halfway = read_key_ring(key_file)
    assert len(halfway.all()) == 2
    urls = [f"sqlite:///{folder / (name + '.sqlite3')}" for name in NAMES]
    assert [len(key_ids(u)) for u in urls] == [1, 1, 1]
    assert len({next(iter(key_ids(u))) for u in urls}) == 2  # the first done, the rest not
    assert all(opened(u, halfway) == SECRETS for u in urls)

    rotation = rotate(key_file, infos)
    final = read_key_ring(key_file)
    assert rotation.kept_key_ids == ()
    assert final.previous == ()
    assert all(key_ids(u) == {final.current.key_id} for u in urls)  # type: ignore[union-attr]
    assert all(opened(u, final) == SECRETS for u in urls)


def test_a_rotation_killed_midway_loses_nothing(config: Path, folder: Path, key_file: Path) -> None:
    """``kill -9`` while the rotation waits on the second database (its write lock held
    here): the first is done, the rest are not, and the key file reads them all."""
    urls = [f"sqlite:///{folder / (name + '.sqlite3')}" for name in NAMES]
    old_id = read_key_ring(key_file).current.key_id  # type: ignore[union-attr]
    blocker = sqlite3.connect(folder / "Beta Dental.sqlite3", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    rotating = subprocess.Popen(
        [str(EXE), "--config", str(config), "key", "rotate"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: key_ids(urls[0]) != {old_id}, "the first database to be done", 60)
        rotating.send_signal(signal.SIGKILL)
        rotating.wait(10)
    finally:
        if rotating.poll() is None:
            rotating.kill()
        blocker.rollback()
        blocker.close()
    halfway = read_key_ring(key_file)
    assert [key_ids(u) for u in urls] == [
        {halfway.current.key_id},  # type: ignore[union-attr]
        {old_id},
        {old_id},
    ]
    assert all(opened(u, halfway) == SECRETS for u in urls)
    infos = discover(f"sqlite:///{folder}", server_id="SRV", genuine_server_check=False)
    assert rotate(key_file, infos).kept_key_ids == ()
    final = read_key_ring(key_file)
    assert all(opened(u, final) == SECRETS for u in urls)


def test_a_database_that_cannot_be_read_keeps_the_old_key(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path, key_file: Path
) -> None:
    (folder / "Broken Dental.sqlite3").write_bytes(b"this is not a database" * 100)
    old = read_key_ring(key_file)
    code, _, err = run(capsys, "--config", str(config), "key", "rotate")
    ring = read_key_ring(key_file)
    assert code == exit_codes.UNAVAILABLE
    assert f"the old key {old.current.key_id} stays in {key_file}" in err  # type: ignore[union-attr]
    assert ring.previous == (old.current,)
    url = f"sqlite:///{folder / 'Alpha Dental.sqlite3'}"
    assert key_ids(url) == {ring.current.key_id}  # type: ignore[union-attr]


# --- on PostgreSQL and MariaDB ------------------------------------------------------------


@pytest.fixture(params=["postgresql", "mariadb"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, dict[str, str]]]:
    """Two practice databases on a real server, with a unique prefix; (server URL, prefix)."""
    admin = POSTGRES_ADMIN_URL if request.param == "postgresql" else MARIADB_ADMIN_URL
    prefix = f"pes_rot_{uuid.uuid4().hex[:8]} "
    with named_databases(admin, [prefix + "Alpha", prefix + "Beta"]) as urls:
        yield server_url(admin), prefix, urls


def test_rotate_on_a_database_server(
    server: tuple[str, str, dict[str, str]], key_file: Path
) -> None:
    url, prefix, urls = server
    secrets = Secrets.for_writing(key_file)
    for name, db_url in urls.items():
        _seal(db_url, name, secrets)
    infos = discover(
        url, server_id="SRV", genuine_server_check=False, only=lambda n: n.startswith(prefix)
    )
    rotation = rotate(key_file, infos)
    ring = read_key_ring(key_file)
    assert [(o.name.removeprefix(prefix), o.reencrypted) for o in rotation.databases] == [
        ("Alpha", 3),
        ("Beta", 3),
    ]
    assert ring.previous == ()
    for db_url in urls.values():
        assert key_ids(db_url) == {ring.current.key_id}  # type: ignore[union-attr]
        assert opened(db_url, ring) == SECRETS
        assert set(SECRETS) <= SECRET_FIELDS
