"""Times for people: the practice server's local time, to the second, with the zone named.

Every time a person reads (``status``, ``diagnostics``, ``mail list``/``show``, ``mail
send-test``, the setup wizard) goes through ``local_text``: ``2026-12-02 09:14:03 CET``.
The stored times are naive UTC (the database server's clock, ``actors.practice_schema``)
and JSON output keeps them as UTC ISO 8601; only text for people is local. The zone is
``supervisor.local_zone.local_zone()`` (``TZ``, else ``/etc/localtime``), aware of
daylight saving, so a summer time is shown in summer time.

Sentences written once and stored (a check-in's tooltip "Nothing heard from the email
service since 2026-12-02 08:14:03 UTC", the recovery line "… from 2026-12-02 08:00:00 to
2026-12-02 08:14:03 UTC") carry UTC, named; ``local_sentence`` rewrites such times into
local ones when they are shown to a person. The status page does the same in the
browser's zone (``supervisor/http/static/status.js``, ``localTime``/``localSentence``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo

from supervisor.local_zone import local_zone

_STAMP = r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?"
_UTC_TIMES = re.compile(rf"(?P<first>{_STAMP})(?: to (?P<second>{_STAMP}))? UTC\b")


def local_text(moment: datetime | None, zone: tzinfo | None = None) -> str:
    """``moment`` (naive meaning UTC, or aware) as ``YYYY-MM-DD HH:MM:SS ZONE`` in ``zone``
    (default: this server's); ``""`` for None."""
    if moment is None:
        return ""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    local = aware.astimezone(zone or local_zone())
    return f"{local:%Y-%m-%d %H:%M:%S} {_zone_name(local)}"


def _zone_name(local: datetime) -> str:
    name = local.tzname() or ""
    if name and not name.startswith(("+", "-")):
        return name
    offset = local.utcoffset()
    if offset is None:
        return "UTC"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def local_sentence(text: str, zone: tzinfo | None = None) -> str:
    """``text`` with each ``YYYY-MM-DD HH:MM:SS UTC`` (and ``A to B UTC``) in it shown as
    local time (``local_text``); the rest is left as it is."""
    chosen = zone or local_zone()

    def one(stamp: str) -> str:
        return local_text(datetime.fromisoformat(stamp.replace("T", " ")), chosen)

    def replace(match: re.Match[str]) -> str:
        if match["second"] is None:
            return one(match["first"])
        return f"{one(match['first'])} to {one(match['second'])}"

    return _UTC_TIMES.sub(replace, text)
