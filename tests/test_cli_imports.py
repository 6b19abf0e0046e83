"""Each command imports only what it uses (issue 11: the read commands within 1 s, ``serve``
READY within 2 s, where most of the time was imports; ``bench/cli_imports.py`` measures it).

Each test runs a command in a new interpreter and reads ``sys.modules`` after it, so a
later top-level import of a library a command does not use fails here, by name.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from actors.practice_schema import init_practice_database
from events.sql_store import SqlEventStore
from events.types import MailboxStarted, SelfTestPassed, ServiceStarted, stream_for

ROOT = Path(__file__).resolve().parent.parent

WEB_AND_PROVIDERS = ("fastapi", "starlette", "uvicorn", "msal", "google.auth", "requests")
"""Libraries of ``serve`` (the web server) and of OAuth sign-in: no read command's."""

LOG_UPKEEP = ("events.archive", "events.compact", "events.retention")
"""Modules of ``events archive`` and ``events prune`` only."""

REPLAY = ("events.replay", "events.snapshot", "events.stream_snapshots", "events.projections")
"""Modules that fold the log into state: ``events replay`` (and ``serve``) only."""

RUN_AND_LIST = (
    "import json, sys\n"
    "from supervisor.cli import main\n"
    "code = main(sys.argv[2:])\n"
    "with open(sys.argv[1], 'w') as out:\n"
    "    json.dump(sorted(sys.modules), out)\n"
)
"""Run the command (``sys.argv[2:]``), then write every module it imported to ``argv[1]``."""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config with a short event log and one SQLite practice database."""
    log = tmp_path / "events.sqlite3"
    practices = tmp_path / "practices"
    practices.mkdir()
    init_practice_database(f"sqlite:///{practices / 'Smile.sqlite3'}", practice_name="Smile")
    store = SqlEventStore(f"sqlite:///{log}")
    store.append("service", 0, [ServiceStarted("SRV1", "0.1.0", 77)])
    store.append(stream_for("Smile"), 0, [MailboxStarted(1), SelfTestPassed(1, ("database",))])
    store.close()
    path = tmp_path / "service.toml"
    path.write_text(
        f'[service]\nevent_store = "sqlite:///{log}"\n'
        f'[databases]\nserver_url = "sqlite:///{practices}"\n'
    )
    return path


def imported_by(tmp_path: Path, *argv: str) -> set[str]:
    """The modules a new interpreter holds after running ``email-service ARGV``."""
    listing = tmp_path / "modules.json"
    subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST, str(listing), *argv],
        cwd=ROOT,
        capture_output=True,
        check=False,
        timeout=120,
    )
    return set(json.loads(listing.read_text()))


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` (a package counts with its submodules) are in ``modules``."""
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in modules))


def test_events_stats_imports_neither_rich_nor_replay_nor_log_upkeep(
    tmp_path: Path, config: Path
) -> None:
    modules = imported_by(tmp_path, "--config", str(config), "events", "stats")

    assert "events.sql_store" in modules  # it did run
    assert loaded(modules, ("rich", *WEB_AND_PROVIDERS, *LOG_UPKEEP, *REPLAY)) == []


def test_events_tail_imports_neither_rich_nor_replay_nor_log_upkeep(
    tmp_path: Path, config: Path
) -> None:
    modules = imported_by(tmp_path, "--config", str(config), "events", "tail", "--no-follow")

    assert "events.sql_store" in modules
    assert loaded(modules, ("rich", *WEB_AND_PROVIDERS, *LOG_UPKEEP, *REPLAY)) == []


def test_events_replay_without_a_terminal_imports_no_progress_bar(
    tmp_path: Path, config: Path
) -> None:
    modules = imported_by(tmp_path, "--config", str(config), "events", "replay", "--db", "Smile")

    assert "events.replay" in modules
    assert loaded(modules, ("rich", *WEB_AND_PROVIDERS, *LOG_UPKEEP)) == []


def test_status_reads_practice_databases_without_the_event_log_modules(
    tmp_path: Path, config: Path
) -> None:
    modules = imported_by(tmp_path, "--config", str(config), "status")

    assert "actors.practice_db" in modules  # the regular path: discovery and SQLAlchemy
    assert loaded(modules, ("rich", "events.store", *WEB_AND_PROVIDERS, *LOG_UPKEEP)) == []


def test_serve_loads_no_oauth_provider_library_and_no_phone_numbers_until_used() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys, supervisor.service; print(json.dumps(sorted(sys.modules)))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    modules = set(json.loads(done.stdout))

    assert "fastapi" in modules  # serve's own web server is there
    providers = ("msal", "google.auth", "google_auth_oauthlib", "requests", "phonenumbers")
    assert loaded(modules, providers) == []
