"""What the outbox needs from a way of sending (SMTP for email; the SMS gateways).

The outbox claims a row, turns it into an ``OutgoingMessage`` and gives it to the
``Sender`` of the row's channel. The sender calls ``on_wire`` exactly once, at the last
moment before which the message certainly has not reached the other side (SMTP: just
before the final ``.`` of DATA; HTTP: just before the request is written). The outbox
records that moment durably in ``email_messages.wire_at`` before ``on_wire`` returns, so
after a crash it knows exactly which rows may have been delivered (DESIGN decision 7).

Delivery failures are results, not exceptions: only a bug raises (and crashes the
mailbox). ``detail`` carries the server's own words with every secret removed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

OutcomeKind = Literal["sent", "retry", "failed", "uncertain"]
"""``sent``: accepted. ``retry``: a temporary failure before ``on_wire`` (4xx, connection
refused or dropped, timeout): safe to send again later. ``failed``: permanent (5xx, an
address that can never work). ``uncertain``: the connection failed after ``on_wire`` and
before the answer, so the message may or may not have been delivered."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One claimed outbox row, as the sender sees it. ``message_id`` is already fixed."""

    row_id: int
    channel: str  # "email" or "sms"
    message_id: str  # with angle brackets, e.g. "<abc@practice.example>"
    from_addr: str
    to_addrs: tuple[str, ...]
    cc_addrs: tuple[str, ...]
    subject: str
    body_text: str
    body_html: str
    raw: bytes | None  # a complete RFC 5322 message to send as it is, or None
    attempts: int  # earlier attempts (0 on the first)
    # Recipients (lower-case addresses) an earlier attempt settled (accepted, or refused
    # for good): not sent to again. The message itself is the same (same Message-ID).
    skip: frozenset[str] = frozenset()


RecipientState = Literal["sent", "deferred", "refused"]
"""``sent``: the server accepted the message for this recipient. ``deferred``: a
temporary refusal (4xx); the recipient is tried again. ``refused``: a permanent refusal
(5xx, or an address this server cannot take); never tried again."""


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """What became of one recipient of a row (lower-case ``address``)."""

    address: str
    state: RecipientState
    reply: str = ""  # the server's words for deferred and refused recipients


ServerHealth = Literal["ok", "fault", ""]
"""What an attempt says about the server (the self-test's component), apart from the
message: ``ok`` the server was reached and answered (a 4xx or 5xx for this message or one
of its recipients included: that is the message's problem); ``fault`` the server could
not be used (no connection, TLS or log-in failed, the connection was lost, an SMS gateway
answering 5xx or refusing the account); ``""`` nothing was learnt (the message was refused
before any contact, e.g. a bad address)."""


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What became of one message."""

    kind: OutcomeKind
    detail: str = ""  # the server's words (secrets removed); "" when sent cleanly
    refused: tuple[str, ...] = ()  # recipients refused while the others were accepted
    # Not part of equality: what the attempt says about the server, not about the message.
    server: ServerHealth = field(default="", compare=False)  # see ServerHealth
    # Per recipient, when the server answered for each (SMTP): accepted, deferred (4xx)
    # or refused (5xx, or an address it cannot take). Not part of equality either.
    recipients: tuple[RecipientResult, ...] = field(default=(), compare=False)


class Sender(Protocol):
    """Delivers messages of one channel; used from one mailbox thread at a time."""

    resend_uncertain: bool
    """Whether an ``uncertain`` message is sent again automatically. True for email (the
    same Message-ID lets the receiving side and people recognise the duplicate); False for
    SMS, which is recorded as uncertain and left for a person (``mail retry-failed``)."""

    def send(self, message: OutgoingMessage, on_wire: Callable[[], None]) -> SendOutcome:
        """Deliver ``message``; call ``on_wire()`` once just before the point of no return.

        If ``on_wire`` raises, the message must not be completed (no final ``.``, no
        request written) and the exception must propagate: the outbox raises there when
        it may no longer send the row (a newer incarnation, the row taken away).
        """
        ...

    def close(self) -> None:
        """Release any open connection (a batch may reuse one connection)."""
        ...
