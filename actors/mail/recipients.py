"""What one attempt makes of a row, recipient by recipient. Pure: no I/O, no clock.

``settle(kind, detail, earlier, now, attempts, max_attempts)`` merges the recipients an
attempt answered for (``now``) into the row's record from earlier attempts (``earlier``,
its ``recipient_status`` column) and decides the row's outcome:

- Every recipient settled (accepted, or refused for good) and at least one accepted:
  ``sent``. Refused recipients are listed (``refused_recipients``).
- Some accepted (now or before) and some deferred (4xx): ``retry`` (the row stays in the
  outbox, queued; the next attempt goes to the deferred recipients only, with the same
  Message-ID), until ``max_attempts``: then the deferred ones count as refused
  ("gave up after N attempts") and the row is ``sent``.
- Some accepted before and the rest now refused for good: ``sent`` (the accepted ones
  have it); ``last_error`` says who did not get it.
- Nobody accepted yet: the attempt's own ``kind`` (``retry`` until ``max_attempts``,
  then ``failed``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from actors.mail.sender import RecipientResult

Settled = Literal["sent", "retry", "failed"]


@dataclass(frozen=True, slots=True)
class Settlement:
    """The row's outcome after one attempt."""

    kind: Settled
    detail: str  # for last_error ("" when there is nothing to say)
    recipients: tuple[RecipientResult, ...]  # the merged record, in first-seen order
    newly_sent: int  # recipients this attempt delivered to

    @property
    def refused(self) -> tuple[str, ...]:
        """Recipients refused for good (``refused_recipients``)."""
        return tuple(r.address for r in self.recipients if r.state == "refused")


def merge(
    earlier: Iterable[RecipientResult], now: Iterable[RecipientResult]
) -> tuple[RecipientResult, ...]:
    """The record after ``now``: each address's latest result, in first-seen order; a
    settled result (sent, refused) is never replaced."""
    record: dict[str, RecipientResult] = {}
    for result in (*earlier, *now):
        known = record.get(result.address)
        if known is None or known.state == "deferred":
            record[result.address] = result
    return tuple(record.values())


def _listed(results: Iterable[RecipientResult]) -> str:
    return "; ".join(f"{r.address} ({r.reply})" if r.reply else r.address for r in results)


def settle(
    kind: Settled,
    detail: str,
    earlier: tuple[RecipientResult, ...],
    now: tuple[RecipientResult, ...],
    attempts: int,
    max_attempts: int,
) -> Settlement:
    """The row's outcome after attempt number ``attempts``; see the module docstring."""
    record = merge(earlier, now)
    had = {r.address for r in earlier if r.state == "sent"}
    newly_sent = sum(1 for r in record if r.state == "sent" and r.address not in had)
    if not any(r.state == "sent" for r in record):
        if kind == "retry" and attempts >= max_attempts:
            return Settlement("failed", f"gave up after {attempts} attempts: {detail}", record, 0)
        return Settlement(kind, detail, record, 0)
    # Someone has the message. The others wait while they may still get it.
    waiting = any(r.state == "deferred" for r in record) if kind == "sent" else kind == "retry"
    if waiting and attempts < max_attempts:
        last = "" if kind == "sent" else detail
        return Settlement("retry", _partial(record, last), record, newly_sent)
    given_up = f"gave up after {attempts} attempts" if waiting else "not delivered"
    record = tuple(
        RecipientResult(r.address, "refused", f"{given_up}: {r.reply}" if r.reply else given_up)
        if r.state == "deferred"
        else r
        for r in record
    )
    refused = [r for r in record if r.state == "refused"]
    parts = [f"refused: {_listed(refused)}" if refused else ""]
    if kind != "sent":
        parts.append(f"not delivered to the remaining recipients ({given_up}): {detail}")
    return Settlement("sent", "; ".join(p for p in parts if p), record, newly_sent)


def _partial(record: tuple[RecipientResult, ...], detail: str) -> str:
    sent = [r.address for r in record if r.state == "sent"]
    waiting = [r for r in record if r.state == "deferred"]
    refused = [r for r in record if r.state == "refused"]
    parts = [f"sent to {', '.join(sent)}"]
    if waiting:
        parts.append(f"deferred, to be tried again: {_listed(waiting)}")
    if refused:
        parts.append(f"refused: {_listed(refused)}")
    if detail:
        parts.append(f"the last attempt failed: {detail}")
    return "; ".join(parts)
