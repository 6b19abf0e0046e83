"""Whether the inbox still checks for new mail: a pure rule the self-test applies.

The watchdog (``supervisor.hang_rule``) sees a mailbox that makes no progress at all. It
cannot see a mailbox that is busy with everything but its inbox: a soak once had an
inbox step that was never scheduled again (a mailbox restarted while its database was
locked), and for the rest of the run no mail was imported while the light stayed steady.
So the self-test asks one more question when incoming mail is on and its settings are
usable (the inbox exists): when did the inbox last end a *pass*?

A pass is one run of the inbox step that asked the server: a poll (IDLE's wake-up on news,
or its end after the slice the mailbox gave it, at most ``IDLE_SLICE_SECONDS`` = 5 s; a
NOOP without IDLE) or an attempt that failed (a server that refuses or does not answer is
its own diagnostic, in its own words, so it is progress here). IDLE never waits long in
this service: the mailbox hands the inbox at most a few seconds of IDLE at a time and
re-issues it each time, so a working inbox with IDLE ends a pass every few seconds, and one
without IDLE every ``mail.inbox_poll_seconds``.

``stall_after`` is twice the longest a working inbox goes between passes; the inbox has
stopped when ``STALL_SELFTESTS`` self-tests in a row found that much time passed since its
last pass (or since it was set up, when it has not had one). One such self-test is not
enough: after a pause of the whole process (a suspended virtual machine, SIGSTOP) every
clock reading jumps, the self-test runs first in the mailbox's tick and the inbox right
after it. Likewise after a stretch in which the self-test did not look at the mail at all
(the database did not answer: that failure is its own diagnostic), the inbox has its turns
before it is judged. A slow IMAP server makes a pass long, never missing:
the self-test runs in the mailbox's thread, between steps, so it looks only once the pass
has ended. All times are the mailbox clock's monotonic seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from events.describe import describe_duration

STALL_SELFTESTS = 3
"""Self-tests in a row that must find the inbox past the bound before it is said to have
stopped."""

TURN_DELAY_CHECKINS = 4.0
"""Check-in intervals the inbox's turn may wait behind the other steps of a tick: one
self-test and one outbox round (which stops when the self-test falls due), each made of
waits bounded by half the hang limit (``mail.io_timeout_seconds``, the database's)."""


@dataclass(frozen=True, slots=True)
class InboxWatch:
    """What the self-test knows of one inbox's passes."""

    since: float
    """When the inbox was set up or its last pass ended (monotonic seconds)."""
    overdue: int = 0
    """Self-tests in a row that found it without a pass for longer than the bound."""
    said: bool = False
    """Whether the service's log has said it stopped (once per stop, not per check-in)."""


def stall_after(inbox_poll_seconds: float, checkin_seconds: float, settings_every: float) -> float:
    """Seconds without a pass after which a working inbox would have had one, twice over.

    A working inbox ends a pass every IDLE slice with IDLE, every ``inbox_poll_seconds``
    without it or after a failed attempt; a new inbox (settings read or changed) may wait
    ``settings_every`` for the step's first turn; a turn may come late behind the rest of
    a tick (``TURN_DELAY_CHECKINS`` check-in intervals). Defaults: 2 * (30 + 60) = 180 s.
    """
    longest = max(inbox_poll_seconds, settings_every) + TURN_DELAY_CHECKINS * checkin_seconds
    return 2.0 * longest


def passed(now: float) -> InboxWatch:
    """The watch after a pass that ended at ``now`` (or an inbox set up at ``now``)."""
    return InboxWatch(now)


def looked(watch: InboxWatch, now: float, limit: float) -> InboxWatch:
    """The watch after a self-test looked at it at ``now``."""
    overdue = watch.overdue + 1 if now - watch.since > limit else 0
    return InboxWatch(watch.since, overdue, watch.said)


def said(watch: InboxWatch) -> InboxWatch:
    """The watch once the log has said the inbox stopped."""
    return InboxWatch(watch.since, watch.overdue, True)


def stalled_for(
    watch: InboxWatch, now: float, limit: float, looks: int = STALL_SELFTESTS
) -> float | None:
    """Seconds the inbox has gone without a pass when that means it stopped (``looks``
    self-tests in a row found it past ``limit``), else None."""
    quiet = now - watch.since
    if quiet > limit and watch.overdue >= looks:
        return quiet
    return None


def stall_words(quiet: float) -> str:
    """The diagnostic line (the check-in adds "Receiving (IMAP): " before it)."""
    minutes = int(quiet // 60)
    span = timedelta(minutes=minutes) if minutes else timedelta(seconds=int(quiet))
    return (
        f"incoming mail not checked for {describe_duration(span)}: the service stopped "
        "looking for new mail; Restart Email Service starts it again"
    )
