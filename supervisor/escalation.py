"""When the whole process should give up and let the service manager restart it (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

BURST_WINDOW_SECONDS = 10.0
BURST_MIN_DATABASES = 3


def crash_burst(last_crash: Mapping[str, datetime], served: int, now: datetime) -> bool:
    """Return whether most mailboxes crashed at once: a fault of the process, not a database.

    True when, within the last ``BURST_WINDOW_SECONDS``, at least
    ``BURST_MIN_DATABASES`` databases and more than half of the ``served`` ones
    crashed. A single practice's broken set-up never takes the others down.
    """
    start = now - timedelta(seconds=BURST_WINDOW_SECONDS)
    recent = sum(1 for t in last_crash.values() if start < t <= now)
    return recent >= BURST_MIN_DATABASES and recent * 2 > served
