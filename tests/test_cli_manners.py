"""Command-line manners: a closed output pipe ends quietly, and ``status`` imports only
what it uses (real processes of the installed entry point, on SQLite practice files)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from actors import checkins_table, practice_db
from actors.checkins_table import NewCheckIn
from actors.practice_schema import init_practice_database
from supervisor import exit_codes
from supervisor.cli import COMMANDS, build_parser, command_of

HEAVY = ("fastapi", "uvicorn", "pydantic", "prometheus_client", "pykka", "imapclient")
"""Libraries a workstation's ``status`` has no use for (the web server, the actors, mail)."""


@pytest.fixture
def practice_env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'Smile.db'}"
    init_practice_database(url, practice_name="Smile")
    engine = practice_db.make_engine(url)
    try:
        with engine.begin() as conn:
            checkins_table.write_checkin(
                conn, NewCheckIn(True, "ok", timedelta(hours=1), "SRV1", "test")
            )
    finally:
        engine.dispose()
    env = dict(os.environ)
    env["EMAIL_SERVICE_DATABASES_SERVER_URL"] = f"sqlite:///{tmp_path}"
    env["EMAIL_SERVICE_SERVICE_EVENT_STORE"] = f"sqlite:///{tmp_path / 'events.db'}"
    return env


def test_a_closed_output_pipe_ends_the_command_quietly(practice_env: dict[str, str]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes a line (`| head -0`)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "supervisor.cli", "status", "--db", "Smile"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=practice_env,
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (exit_codes.BROKEN_PIPE, "")


def test_status_imports_neither_the_web_server_nor_the_actors(
    practice_env: dict[str, str],
) -> None:
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['email-service', 'status', '--db', 'Smile']\n"
        "try:\n"
        "    runpy.run_module('supervisor.cli', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        env=practice_env,
        text=True,
        check=True,
        timeout=60,
    )
    assert "running" in done.stdout
    assert done.stdout.splitlines()[-1] == "LOADED []"


def test_the_command_is_found_past_the_global_options() -> None:
    assert command_of(["--config", "status", "--debug", "restart", "--db", "x"]) == "restart"
    assert command_of(["--debug", "--help"]) is None


def test_help_still_lists_every_command() -> None:
    text = build_parser().format_help()
    assert all(name in text for name in COMMANDS)
