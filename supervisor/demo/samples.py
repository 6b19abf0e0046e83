"""The demo's sample mail: appointment reminders to send, and patients' replies to receive.

Every sample has a fixed Message-ID made from its practice's name, so seeding twice
finds what is already there and adds nothing: ``queue_reminders`` inserts the outbox rows
(email, and SMS through the practice's email-to-SMS gateway) the practice software would
queue, and ``replies_for`` builds the replies a patient's mail program would send, which
the demo puts into the practice's IMAP mailbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

from sqlalchemy import Insert, insert, select

from actors import practice_db
from actors.practice_schema import email_messages, patients
from actors.statements import constant, statement

DOMAIN = "demo.email-service.example"
SMS_GATEWAY = "email:{number}@sms.demo.email-service.example"


@dataclass(frozen=True, slots=True)
class Patient:
    """A made-up patient (the numbers are valid UK mobile numbers, the addresses reserved
    example domains)."""

    id: int
    name: str
    email: str
    mobile: str


PATIENTS = (
    Patient(1, "Olivia Bennett", "olivia.bennett@example.org", "07911 123456"),
    Patient(2, "James Patel", "james.patel@example.net", "07911 654321"),
    Patient(3, "Aisha Rahman", "aisha.rahman@example.com", "07912 345678"),
)


def slug(practice_name: str) -> str:
    """``Smile Dental`` -> ``smile-dental``: the practice's part of addresses and IDs."""
    return "-".join(practice_name.lower().split())


def reception_address(practice_name: str) -> str:
    """The practice's own address (``from_address``, and where replies go)."""
    return f"reception@{slug(practice_name)}.example"


def _day(when: date) -> str:
    return f"{when:%A} {when.day} {when:%B}"


def _reminders(practice_name: str, today: date) -> list[dict[str, object]]:
    first, second = today + timedelta(days=2), today + timedelta(days=3)
    olivia, james, aisha = PATIENTS
    key = slug(practice_name)
    sign = f"\n\nKind regards,\nThe team at {practice_name}\n"
    return [
        {
            "channel": "email",
            "message_id": f"<reminder-1.{key}@{DOMAIN}>",
            "to_addrs": f"{olivia.name} <{olivia.email}>",
            "subject": f"Your appointment at {practice_name} on {_day(first)} at 09:30",
            "body_text": f"Dear Olivia,\n\nThis is a reminder of your check-up with Dr Jones "
            f"on {_day(first)} at 09:30. Reply to this email if you need to change it." + sign,
            "patient_id": olivia.id,
        },
        {
            "channel": "email",
            "message_id": f"<reminder-2.{key}@{DOMAIN}>",
            "to_addrs": f"{james.name} <{james.email}>",
            "subject": f"Your appointment at {practice_name} on {_day(second)} at 14:15",
            "body_text": f"Dear James,\n\nThis is a reminder of your hygienist appointment "
            f"on {_day(second)} at 14:15. Please arrive five minutes early." + sign,
            "patient_id": james.id,
        },
        {
            "channel": "sms",
            "message_id": f"<reminder-3.{key}@{DOMAIN}>",
            "to_addrs": aisha.mobile,
            "subject": "",
            "body_text": f"{practice_name}: reminder of your appointment on {_day(first)} at "
            "11:00. Call us if you cannot come.",
            "patient_id": aisha.id,
        },
        {
            "channel": "sms",
            "message_id": f"<reminder-4.{key}@{DOMAIN}>",
            "to_addrs": olivia.mobile,
            "subject": "",
            "body_text": f"{practice_name}: see you on {_day(first)} at 09:30.",
            "patient_id": olivia.id,
        },
    ]


def reminder_ids(practice_name: str) -> list[str]:
    """The Message-IDs of the reminders ``queue_reminders`` queues."""
    return [str(r["message_id"]) for r in _reminders(practice_name, date.today())]


def queue_reminders(url: str, practice_name: str, today: date) -> int:
    """Queue the practice's reminders in its outbox, and its patients in ``patients``,
    unless already there (by Message-ID, by patient id); return how many rows were queued."""
    engine = practice_db.make_engine(url)
    try:
        with engine.begin() as conn:
            known = {r for (r,) in conn.execute(_PATIENT_IDS)}
            for p in PATIENTS:
                if p.id not in known:
                    conn.execute(_add_patient(p))
            present = {m for (m,) in conn.execute(MESSAGE_IDS)}
            rows = [r for r in _reminders(practice_name, today) if r["message_id"] not in present]
            for row in rows:
                conn.execute(_queue_reminder(reception_address(practice_name), row))
    finally:
        engine.dispose()
    return len(rows)


_PATIENT_IDS = constant("demo.patient_ids", select(patients.c.id))
MESSAGE_IDS = constant("demo.message_ids", select(email_messages.c.message_id))
"""Every Message-ID a practice database holds."""


@statement("demo.add_patient", PATIENTS[0])
def _add_patient(p: Patient) -> Insert:
    return insert(patients).values(id=p.id, email=p.email, mobile_phone=p.mobile)


@statement(
    "demo.queue_reminder",
    "reception@riverside.example",
    _reminders("Riverside Dental", date(2026, 1, 5))[0],
)
def _queue_reminder(from_addr: str, row: dict[str, object]) -> Insert:
    return insert(email_messages).values(
        folder="outbox", status="queued", from_addr=from_addr, **row
    )


def replies_for(practice_name: str, today: date) -> list[tuple[str, bytes]]:
    """The patients' replies for the practice's mailbox: (Message-ID, raw message)."""
    key = slug(practice_name)
    olivia, james, _ = PATIENTS
    first, second = today + timedelta(days=2), today + timedelta(days=3)
    samples = [
        (
            f"<reply-1.{key}@example.org>",
            f"{olivia.name} <{olivia.email}>",
            f"Re: Your appointment at {practice_name} on {_day(first)} at 09:30",
            f"<reminder-1.{key}@{DOMAIN}>",
            "Thank you, I will be there.\n\nOlivia\n",
        ),
        (
            f"<reply-2.{key}@example.net>",
            f"{james.name} <{james.email}>",
            f"Re: Your appointment at {practice_name} on {_day(second)} at 14:15",
            f"<reminder-2.{key}@{DOMAIN}>",
            "Hello, could I move this to a later time the same day? After 16:00 would be "
            "ideal.\n\nThanks,\nJames\n",
        ),
        (
            f"<question-3.{key}@example.com>",
            "Sam Taylor <sam.taylor@example.com>",
            "New patient enquiry",
            "",
            f"Hello,\n\nAre you taking on new patients? I have just moved near {practice_name} "
            "and need a check-up for myself and my two children.\n\nSam Taylor\n",
        ),
    ]
    built = []
    for number, (message_id, sender, subject, in_reply_to, text) in enumerate(samples):
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = f"{practice_name} <{reception_address(practice_name)}>"
        msg["Subject"] = subject
        msg["Date"] = format_datetime(_sent_at(today, number))
        msg["Message-ID"] = message_id
        if in_reply_to:
            msg["In-Reply-To"] = in_reply_to
        msg.set_content(text)
        built.append((message_id, msg.as_bytes(policy=policy.SMTP)))
    return built


def _sent_at(today: date, number: int) -> datetime:
    return datetime.combine(today, time(8, 5 + 7 * number), tzinfo=UTC)
