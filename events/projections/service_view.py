"""The whole service as the log tells it: every database's health and place in the tree.

``fold(view, records) -> view`` is pure: it copies the view's maps once, folds the
records into the copies and returns a new view, so ``replay(a + b) ==
fold(replay(a), b)``. Callers must not mutate the maps of a view they were given.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from events.projections.health import HEALTH_TYPES, DbHealth, apply_health
from events.projections.health import INITIAL as HEALTH_INITIAL
from events.projections.tree import INITIAL as TREE_INITIAL
from events.projections.tree import TreeEntry, apply_tree
from events.recorded import Recorded
from events.types import (
    DatabaseDiscovered,
    DatabaseIgnored,
    DatabaseLost,
    Event,
    MailboxCrashed,
    MailboxGaveUp,
    MailboxStarted,
    MailboxStopped,
    RestartScheduled,
    ServiceStarted,
    ServiceStopping,
    db_of,
)

_TREE_TYPES: frozenset[type[Event]] = frozenset(
    {
        DatabaseDiscovered,
        DatabaseIgnored,
        DatabaseLost,
        MailboxStarted,
        MailboxStopped,
        MailboxCrashed,
        RestartScheduled,
        MailboxGaveUp,
    }
)


class ServiceInfo(NamedTuple):
    """The server process as the ``service`` stream tells it."""

    running: bool = False
    server_id: str = ""
    service_version: str = ""
    pid: int = 0
    started_at: datetime | None = None
    stopping_since: datetime | None = None
    stop_reason: str = ""
    starts: int = 0


@dataclass(frozen=True)
class ServiceView:
    """The state the service held after ``last_seq``."""

    health: dict[str, DbHealth] = field(default_factory=dict)
    tree: dict[str, TreeEntry] = field(default_factory=dict)
    service: ServiceInfo = field(default_factory=ServiceInfo)
    last_seq: int = 0
    last_at: datetime | None = None


def _apply_service(info: ServiceInfo, r: Recorded) -> ServiceInfo:
    e = r.event
    if isinstance(e, ServiceStarted):
        return ServiceInfo(
            True, e.server_id, e.service_version, e.pid, r.recorded_at, None, "", info.starts + 1
        )
    if isinstance(e, ServiceStopping):
        return info._replace(running=False, stopping_since=r.recorded_at, stop_reason=e.reason)
    return info


def fold(view: ServiceView, records: Iterable[Recorded]) -> ServiceView:
    """Return the view after ``records`` (in ``seq`` order)."""
    health = dict(view.health)
    tree = dict(view.tree)
    service = view.service
    last_seq, last_at = view.last_seq, view.last_at
    dbs: dict[str, str | None] = {}
    tree_types = _TREE_TYPES
    for r in records:
        stream = r.stream
        try:
            db = dbs[stream]
        except KeyError:
            db = dbs[stream] = db_of(stream)
        if db is None:
            service = _apply_service(service, r)
        else:
            before = health.get(db, HEALTH_INITIAL)
            after = apply_health(before, r)
            if after is not before:
                health[db] = after
            if type(r.event) in tree_types:
                tree[db] = apply_tree(tree.get(db, TREE_INITIAL), r)
        last_seq, last_at = r.seq, r.recorded_at
    return ServiceView(health, tree, service, last_seq, last_at)


CONSUMED_TYPES: frozenset[str] = frozenset(
    t.__name__ for t in (*HEALTH_TYPES, *_TREE_TYPES, ServiceStarted, ServiceStopping)
)
"""The names of the event types ``fold`` looks at; replay need not build the others."""


def replay(records: Iterable[Recorded]) -> ServiceView:
    """Return the view folded from an empty start."""
    return fold(ServiceView(), records)
