"""When to probe a mail server, as a pure function (issue: health, self-test).

A probe opens a connection to the practice's provider (SMTP: EHLO, TLS, AUTH, RSET, QUIT;
IMAP: login, select, NOOP). The rules:

- every ``probe_seconds`` (default 60 s) a component is checked;
- real traffic that succeeded since the last check counts as a pass: a busy practice is
  never probed;
- after a failure, or when the component has never been checked (a new incarnation), it
  is probed at once — but
- never more than one probe connection per ``min_gap_seconds`` (60 s) to one provider,
  whatever else happens (a restart loop must not hammer the provider): the caller keeps
  ``last_connect_at`` per provider host, across incarnations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

MIN_GAP_SECONDS = 60.0
"""At most one probe connection a minute to one provider (the product document's promise)."""

Action = Literal["probe", "traffic", "wait"]
"""``probe``: connect now. ``traffic``: count the recent real traffic as a pass.
``wait``: keep the last result."""


@dataclass(frozen=True, slots=True)
class ProbeState:
    """What is known about one component's checks."""

    last_check_at: datetime | None = None  # a probe or a traffic pass
    last_ok: bool | None = None  # None: never checked


def decide_probe(
    state: ProbeState,
    now: datetime,
    *,
    traffic_ok_at: datetime | None,
    last_connect_at: datetime | None,
    probe_seconds: float,
    min_gap_seconds: float = MIN_GAP_SECONDS,
) -> Action:
    """Return what to do now for one component. Pure."""
    connect_allowed = last_connect_at is None or now - last_connect_at >= timedelta(
        seconds=min_gap_seconds
    )
    fresh_traffic = traffic_ok_at is not None and (
        state.last_check_at is None or traffic_ok_at > state.last_check_at
    )
    if state.last_ok is None or state.last_ok is False:
        if fresh_traffic:
            return "traffic"
        return "probe" if connect_allowed else "wait"
    assert state.last_check_at is not None
    if now - state.last_check_at < timedelta(seconds=probe_seconds):
        return "wait"
    if fresh_traffic:
        return "traffic"
    return "probe" if connect_allowed else "wait"


def after_check(state: ProbeState, now: datetime, ok: bool) -> ProbeState:
    """The state after a probe or a traffic pass at ``now``. Pure."""
    return ProbeState(last_check_at=now, last_ok=ok)
