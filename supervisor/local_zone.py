"""The server's local time zone, aware of daylight saving (for the practice's send window).

``datetime.now().astimezone().tzinfo`` is a fixed offset, an hour wrong after the next
clock change; this reads the zone itself: ``TZ`` when set, else ``/etc/localtime``
(Linux), else the fixed offset as a last resort (Windows without ``tzdata`` names).
"""

from __future__ import annotations

import os
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LOCALTIME = "/etc/localtime"


def local_zone() -> tzinfo:
    """Return the local zone; never raises."""
    name = os.environ.get("TZ", "").strip().lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open(LOCALTIME, "rb") as file:
            return ZoneInfo.from_file(file, key="localtime")
    except (OSError, ValueError):
        pass
    fixed = datetime.now().astimezone().tzinfo
    assert fixed is not None
    return fixed
