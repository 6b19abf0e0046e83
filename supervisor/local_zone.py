"""The server's local time zone, aware of daylight saving (for the practice's send window).

``datetime.now().astimezone().tzinfo`` is a fixed offset, an hour wrong after the next
clock change; this reads the zone itself: ``TZ`` when set (a zone name such as
``Europe/London``, or the path of a zone file, each optionally after a ``:``, as the C
library reads it), else ``/etc/localtime`` (Linux), else the fixed offset as a last resort
(Windows without ``tzdata`` names).
"""

from __future__ import annotations

import os
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LOCALTIME = "/etc/localtime"


def local_zone() -> tzinfo:
    """Return the local zone; never raises."""
    name = os.environ.get("TZ", "").strip().lstrip(":")
    if name.startswith("/"):  # a zone file's path: ZoneInfo refuses absolute keys
        zone = _from_file(name, key=name)
        if zone is not None:
            return zone
    elif name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    zone = _from_file(LOCALTIME, key="localtime")
    if zone is not None:
        return zone
    fixed = datetime.now().astimezone().tzinfo
    assert fixed is not None
    return fixed


def _from_file(path: str, *, key: str) -> tzinfo | None:
    try:
        with open(path, "rb") as file:
            return ZoneInfo.from_file(file, key=key)
    except (OSError, ValueError):
        return None
