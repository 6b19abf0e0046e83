"""Every child of the supervisor is supervised (the real tree on SQLite practice files):
the watchdog, the command reader, the check-in projector, the log keeper and the
scheduler's thread each crash for real in their own thread; the crash is logged, the child
restarted, and the service manager's ping is given only while every child answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest
from pykka.messages import ProxyCall

from actors import commands_table, practice_db
from config import load_settings
from events.store import read_all
from events.types import ChildCrashed, ChildRestartScheduled, RestartRequested, SelfTestPassed
from supervisor.service import Tree, start_tree, stop_tree, tree_answers
from tests.mail_helpers import wait_until
from tests.test_service import make_practices, settings_for, wait_for_events


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Tree]:
    make_practices(tmp_path / "practices", "Smile Dental")
    t = start_tree(settings_for(tmp_path))
    wait_for_events(t.store, lambda r: isinstance(r.event, SelfTestPassed))
    yield t
    stop_tree(t, "test over")


def crash(ref: pykka.ActorRef[object]) -> None:
    """Make the actor fail in its own thread, as any bug in a ``tell`` would.

    A ``tell`` of a call with a wrong argument raises ``TypeError`` inside the actor's
    loop: pykka stops the actor and runs its ``on_failure`` (NOTES.md, pykka 4.5).
    """
    ref.tell(ProxyCall(attr_path=("tick",), args=("not an argument",), kwargs={}))


def restarted(tree: Tree, child: str) -> list[object]:
    return wait_for_events(
        tree.store,
        lambda r: isinstance(r.event, ChildRestartScheduled) and r.event.child == child,
    )


@pytest.mark.parametrize("child", ["watchdog", "commands", "checkins", "keeper"])
def test_a_crashed_child_actor_is_logged_and_restarted(tree: Tree, child: str) -> None:
    old = tree.children[child]
    crash(old)
    restarted(tree, child)
    crashed = [r.event for r in read_all(tree.store) if isinstance(r.event, ChildCrashed)]
    assert crashed == [ChildCrashed(child, crashed[0].error)]
    assert crashed[0].error.startswith("TypeError:")
    # The decision is logged before the new child is started: wait for the start.
    wait_until(lambda: tree.children[child] is not old, f"a new {child}")
    assert tree_answers(tree)


def test_a_restarted_command_reader_still_reads_the_served_databases(
    tree: Tree, tmp_path: Path
) -> None:
    crash(tree.children["commands"])
    restarted(tree, "commands")
    engine = practice_db.make_engine(f"sqlite:///{tmp_path / 'practices' / 'Smile Dental.sqlite3'}")
    try:
        command_id = commands_table.request_restart(engine, "RECEPTION")
        wait_for_events(
            tree.store,
            lambda r: isinstance(r.event, RestartRequested) and r.event.command_id == command_id,
        )
    finally:
        engine.dispose()


class _ThreadKiller(BaseException):
    """What no timer callback may raise: it ends the scheduler's thread."""


def _kill() -> None:
    raise _ThreadKiller("a timer raised a BaseException")


def test_a_dead_scheduler_thread_is_logged_and_started_again(tree: Tree) -> None:
    tree.scheduler.call_later(0.0, _kill)
    restarted(tree, "scheduler")
    crashed = [r.event for r in read_all(tree.store) if isinstance(r.event, ChildCrashed)]
    assert crashed == [ChildCrashed("scheduler", "_ThreadKiller: a timer raised a BaseException")]
    assert tree.scheduler.answers(5.0)


def test_the_ping_waits_for_a_child_that_is_down(tree: Tree) -> None:
    assert tree_answers(tree)
    tree.children["watchdog"].stop()  # dead, and nobody told the supervisor
    assert not tree_answers(tree)


def test_a_child_that_cannot_be_started_again_makes_the_process_exit(tmp_path: Path) -> None:
    make_practices(tmp_path / "practices", "Smile Dental")
    settings = load_settings(
        environ={},
        overrides={
            "service.event_store": f"sqlite:///{tmp_path / 'events.sqlite3'}",
            "databases.server_url": f"sqlite:///{tmp_path / 'practices'}",
            "supervision.backoff_min_seconds": 0.05,
            "supervision.backoff_max_seconds": 0.2,
        },
    )
    tree = start_tree(settings)
    try:
        assert tree_answers(tree)

        def broken() -> pykka.ActorRef[object]:
            raise RuntimeError("broken for good")

        tree.restarters["watchdog"] = broken
        crash(tree.children["watchdog"])
        assert tree.fatal_event.wait(20.0)
        assert tree.fatal[0].startswith("the watchdog failed 6 times within 60 s")
        crashed = wait_for_events(tree.store, lambda r: isinstance(r.event, ChildCrashed), 6)
        assert [r.event.error for r in crashed[1:]] == ["RuntimeError: broken for good"] * 5
    finally:
        stop_tree(tree, "test over")
