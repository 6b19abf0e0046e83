"""``email-service databases``, ``db init`` and ``login-check``, end to end through
``supervisor.cli.main`` with a configuration file, on a SQLite folder and on PostgreSQL."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor import exit_codes
from supervisor.cli import main
from supervisor.discovery import database_url
from supervisor.eligibility import LOGIN_WARNING
from tests.servers import POSTGRES_ADMIN_URL, named_databases, server_url

SECRET = "secret123"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_config(path: Path, server: str, *, check: bool = False) -> Path:
    # json.dumps makes a valid TOML basic string of any path or URL.
    path.write_text(
        "[service]\n"
        'server_id = "SRV1"\n'
        f"genuine_server_check = {str(check).lower()}\n"
        "[databases]\n"
        f"server_url = {json.dumps(server)}\n"
    )
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    practices = tmp_path / "practices"
    practices.mkdir()
    return practices


@pytest.fixture
def config(tmp_path: Path, folder: Path) -> Path:
    return write_config(tmp_path / "service.toml", f"sqlite:///{folder}")


@pytest.fixture
def practices(capsys: pytest.CaptureFixture[str], config: Path, folder: Path) -> Path:
    """The folder with three practice databases made by ``db init`` and one other file."""
    for name, registered in [("Smile Dental", "SRV1"), ("Demo Practice", None)]:
        extra = ["--registered-server", registered] if registered else []
        assert run(capsys, "db", "init", f"sqlite:///{folder / name}.sqlite3", *extra)[0] == 0
    url = f"sqlite:///{folder / 'zahn.db'}"
    assert run(capsys, "db", "init", url, "--name", "Zahnarztpraxis Müller")[0] == 0
    sqlite3.connect(folder / "unrelated.sqlite").close()
    return config


def one_line_error(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("email-service: ")
    # Every failing exit ends with its code and name (tested in test_cli_exit.py).
    return re.sub(r" \(exit \d+ [A-Z_]+\)$", "", lines[0])


# --- databases -------------------------------------------------------------------------


def test_databases_prints_one_row_per_database(
    capsys: pytest.CaptureFixture[str], practices: Path
) -> None:
    code, out, _ = run(capsys, "--config", str(practices), "databases")
    assert code == exit_codes.OK
    rows = {line.split("  ")[0]: line for line in out.splitlines()[2:] if line.strip()}
    assert rows["Smile Dental"].split()[:5] == ["Smile", "Dental", "Smile", "Dental", "yes"]
    assert " no " in rows["Demo Practice"]
    assert "name contains 'demo'" in rows["Demo Practice"]
    assert "no practice table" in rows["unrelated"]
    assert "Zahnarztpraxis Müller" in rows["zahn"]
    assert out.splitlines()[0].split() == ["Name", "Practice", "Eligible", "Reason"]


def test_databases_json_has_the_contract_keys(
    capsys: pytest.CaptureFixture[str], practices: Path
) -> None:
    code, out, _ = run(capsys, "--config", str(practices), "databases", "--json")
    assert code == exit_codes.OK
    assert json.loads(out) == [
        {
            "name": "Demo Practice",
            "practice": "Demo Practice",
            "eligible": False,
            "reason": "name contains 'demo' (Genuine Server Check is off)",
        },
        {
            "name": "Smile Dental",
            "practice": "Smile Dental",
            "eligible": True,
            "reason": "name contains none of demo, training, test, trial, backup "
            "(Genuine Server Check is off)",
        },
        {"name": "unrelated", "practice": None, "eligible": False, "reason": "no practice table"},
        {
            "name": "zahn",
            "practice": "Zahnarztpraxis Müller",
            "eligible": True,
            "reason": "name contains none of demo, training, test, trial, backup "
            "(Genuine Server Check is off)",
        },
    ]


def test_databases_follows_the_genuine_server_check(
    capsys: pytest.CaptureFixture[str], practices: Path, folder: Path, tmp_path: Path
) -> None:
    on = write_config(tmp_path / "on.toml", f"sqlite:///{folder}", check=True)
    _, out, _ = run(capsys, "--config", str(on), "databases", "--json")
    eligible = {row["name"] for row in json.loads(out) if row["eligible"]}
    assert eligible == {"Smile Dental"}


def test_databases_on_an_empty_folder_says_so(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    code, out, _ = run(capsys, "--config", str(config), "databases")
    assert (code, out.startswith("No databases on sqlite:///")) == (exit_codes.OK, True)


def test_databases_on_a_missing_folder_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.toml", f"sqlite:///{tmp_path / 'nowhere'}")
    code, _, err = run(capsys, "--config", str(config), "databases")
    assert code == exit_codes.UNAVAILABLE
    assert "does not exist" in one_line_error(err)


def test_databases_on_an_unreachable_server_hides_the_password(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"postgresql+psycopg://svc:{SECRET}@127.0.0.1:1"
    config = write_config(tmp_path / "c.toml", url)
    code, out, err = run(capsys, "--config", str(config), "databases", "--timeout", "5")
    assert code == exit_codes.UNAVAILABLE
    line = one_line_error(err)
    assert SECRET not in out + err
    assert "cannot list the databases on postgresql+psycopg://svc:***@127.0.0.1:1" in line


# --- db init ---------------------------------------------------------------------------


def test_db_init_creates_a_sqlite_practice_database_named_after_the_file(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    url = f"sqlite:///{folder / 'Smile Dental.sqlite3'}"
    code, out, _ = run(capsys, "--config", str(config), "db", "init", url)
    assert code == exit_codes.OK
    assert out == f"Created the practice tables in {url} for practice 'Smile Dental'.\n"
    with sqlite3.connect(folder / "Smile Dental.sqlite3") as conn:
        assert conn.execute("SELECT practice_name, registered_server FROM practice").fetchall() == [
            ("Smile Dental", None)
        ]


def test_db_init_twice_keeps_the_first_practice_row(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    url = f"sqlite:///{folder / 'Smile Dental.sqlite3'}"
    run(capsys, "--config", str(config), "db", "init", url, "--registered-server", "SRV1")
    code, out, _ = run(capsys, "--config", str(config), "db", "init", url, "--name", "X", "--json")
    assert code == exit_codes.OK
    assert json.loads(out) == [
        {"database": "Smile Dental", "url": url, "practice": "Smile Dental", "created": False}
    ]


def test_db_init_into_a_missing_folder_is_one_line(
    capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'nowhere' / 'Smile.sqlite3'}"
    code, _, err = run(capsys, "--config", str(config), "db", "init", url)
    assert code == exit_codes.NO_INPUT
    assert "does not exist; create it first" in one_line_error(err)
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(
    "url",
    [f"nosuchdb://svc:{SECRET}@host/db", f"postgresql+psycopg://svc:{SECRET}@127.0.0.1:1"],
    ids=["unknown-backend", "no-database-name"],
)
def test_db_init_with_a_bad_url_is_one_line_without_the_password(
    capsys: pytest.CaptureFixture[str], config: Path, url: str
) -> None:
    code, out, err = run(capsys, "--config", str(config), "db", "init", url)
    assert code == exit_codes.USAGE
    one_line_error(err)
    assert SECRET not in out + err


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://svc:{SECRET}@127.0.0.1:1/Smile",
        f"mysql+pymysql://svc:{SECRET}@127.0.0.1:1/Smile",
    ],
)
def test_db_init_on_an_unreachable_server_is_one_line_without_the_password(
    capsys: pytest.CaptureFixture[str], config: Path, url: str
) -> None:
    code, out, err = run(capsys, "--config", str(config), "db", "init", url)
    assert code == exit_codes.UNAVAILABLE
    assert "cannot create the practice tables in" in one_line_error(err)
    assert SECRET not in out + err


# --- login-check -----------------------------------------------------------------------


def test_login_check_warns_for_a_practice_database_that_is_not_eligible(
    capsys: pytest.CaptureFixture[str], practices: Path
) -> None:
    code, out, err = run(capsys, "--config", str(practices), "login-check", "--db", "Demo Practice")
    assert (code, out, err) == (exit_codes.OK, LOGIN_WARNING + "\n", "")


def test_login_check_says_nothing_for_an_eligible_database(
    capsys: pytest.CaptureFixture[str], practices: Path
) -> None:
    code, out, err = run(capsys, "--config", str(practices), "login-check", "--db", "Smile Dental")
    assert (code, out, err) == (exit_codes.OK, "", "")


def test_login_check_follows_the_genuine_server_check(
    capsys: pytest.CaptureFixture[str], practices: Path, folder: Path, tmp_path: Path
) -> None:
    on = write_config(tmp_path / "on.toml", f"sqlite:///{folder}", check=True)
    # zahn.db has an eligible name but no registered server: with the check on it warns.
    _, out, _ = run(capsys, "--config", str(on), "login-check", "--db", "zahn", "--json")
    assert json.loads(out) == [
        {
            "name": "zahn",
            "eligible": False,
            "warning": LOGIN_WARNING,
            "reason": "Genuine Server Check is on and registered_server is empty",
        }
    ]


def test_login_check_for_a_missing_database_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], practices: Path
) -> None:
    code, out, err = run(capsys, "--config", str(practices), "login-check", "--db", "smile dental")
    assert code == exit_codes.NO_INPUT
    assert out == ""
    assert one_line_error(err) == (
        "email-service: no database 'smile dental' on the server; did you mean 'Smile Dental'?"
    )


def test_login_check_for_a_database_without_practice_is_one_line(
    capsys: pytest.CaptureFixture[str], practices: Path
) -> None:
    code, _, err = run(capsys, "--config", str(practices), "login-check", "--db", "unrelated")
    assert code == exit_codes.NO_INPUT
    assert one_line_error(err) == (
        "email-service: database 'unrelated' is not a practice database (it has no practice table)"
    )


def test_login_check_needs_db(capsys: pytest.CaptureFixture[str], practices: Path) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--config", str(practices), "login-check"])
    assert raised.value.code == exit_codes.USAGE
    assert capsys.readouterr().err == (
        "email-service login-check: error: the following arguments are required: --db "
        "(see --help) (exit 2 USAGE)\n"
    )


@pytest.mark.parametrize("argv", [["databases"], ["db", "init"], ["login-check"]])
def test_each_command_has_help(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main([*argv, "--help"])
    assert raised.value.code == 0
    assert "--json" in capsys.readouterr().out


# --- on PostgreSQL ---------------------------------------------------------------------


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A config pointing at the PostgreSQL server, and a unique prefix for database names."""
    prefix = f"pesc{uuid.uuid4().hex[:6]} "
    names = [prefix + "Smile Dental", prefix + "Training 2026", prefix + "Other"]
    server = server_url(POSTGRES_ADMIN_URL)
    with named_databases(POSTGRES_ADMIN_URL, names):
        yield write_config(tmp_path / "pg.toml", server), prefix


def test_on_postgresql_init_then_databases_then_login_check(
    capsys: pytest.CaptureFixture[str], postgres: tuple[Path, str]
) -> None:
    config, prefix = postgres
    server = server_url(POSTGRES_ADMIN_URL)
    for name in ("Smile Dental", "Training 2026"):
        url = database_url(server, prefix + name)
        code, _, err = run(capsys, "--config", str(config), "db", "init", url, "--name", name)
        assert (code, err) == (exit_codes.OK, "")

    code, out, _ = run(capsys, "--config", str(config), "databases", "--json")
    assert code == exit_codes.OK
    mine = [row for row in json.loads(out) if row["name"].startswith(prefix)]
    assert [(r["name"].removeprefix(prefix), r["practice"], r["eligible"]) for r in mine] == [
        ("Other", None, False),
        ("Smile Dental", "Smile Dental", True),
        ("Training 2026", "Training 2026", False),
    ]

    warn = run(capsys, "--config", str(config), "login-check", "--db", prefix + "Training 2026")
    quiet = run(capsys, "--config", str(config), "login-check", "--db", prefix + "Smile Dental")
    other = run(capsys, "--config", str(config), "login-check", "--db", prefix + "Other")
    assert warn == (exit_codes.OK, LOGIN_WARNING + "\n", "")
    assert quiet == (exit_codes.OK, "", "")
    assert other[0] == exit_codes.NO_INPUT
