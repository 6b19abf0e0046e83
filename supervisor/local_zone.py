"""The server's local time zone, aware of daylight saving (for the practice's send window).

``datetime.now().astimezone().tzinfo`` is a fixed offset, an hour wrong after the next
clock change; this reads the zone itself: ``TZ`` when set (a zone name such as
``Europe/London``, or the path of a zone file, each optionally after a ``:``, as the C
library reads it); then on Windows the zone Windows is set to (the registry's
``TimeZoneKeyName``, e.g. ``GMT Standard Time``, mapped to its IANA name through
``tzlocal``'s table of Unicode CLDR's mapping), elsewhere ``/etc/localtime``; the fixed
offset only as a last resort. Windows has no zone database of its own: the ``tzdata``
package is a dependency there, and ``zoneinfo`` falls back to it.

The path is chosen by the ``platform`` argument (``sys.platform`` by default), so the
Windows one runs in the tests on Linux with a given key name; only reading the registry
is Windows-only.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LOCALTIME = "/etc/localtime"
WINDOWS_ZONE_KEY = r"SYSTEM\CurrentControlSet\Control\TimeZoneInformation"


def local_zone(
    platform: str = sys.platform, windows_key: Callable[[], str | None] | None = None
) -> tzinfo:
    """Return the local zone; never raises. ``windows_key`` gives Windows' zone key
    name (default: read from the registry)."""
    name = os.environ.get("TZ", "").strip().lstrip(":")
    if name.startswith("/"):  # a zone file's path: ZoneInfo refuses absolute keys
        zone = _from_file(name, key=name)
        if zone is not None:
            return zone
    elif name:
        zone = _named(name)
        if zone is not None:
            return zone
    if platform == "win32":
        zone = windows_zone((windows_key or registry_zone_key)())
    else:
        zone = _from_file(LOCALTIME, key="localtime")
    if zone is not None:
        return zone
    fixed = datetime.now().astimezone().tzinfo
    assert fixed is not None
    return fixed


def windows_zone(key_name: str | None) -> tzinfo | None:
    """Return the IANA zone for Windows' zone key name (``GMT Standard Time``), or None
    when it is unknown or its data missing."""
    if not key_name:
        return None
    from tzlocal.windows_tz import win_tz  # a plain table, importable on every platform

    iana = win_tz.get(key_name.strip())
    return None if iana is None else _named(iana)


def registry_zone_key() -> str | None:  # pragma: no cover - Windows only
    """Return the registry's ``TimeZoneKeyName``, or None where it cannot be read."""
    try:
        winreg = importlib.import_module("winreg")
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, WINDOWS_ZONE_KEY) as key:
            value, _kind = winreg.QueryValueEx(key, "TimeZoneKeyName")
    except (ImportError, OSError):
        return None
    # Some Windows versions leave garbage after a NUL in this value.
    return str(value).split("\x00", 1)[0] or None


def _named(name: str) -> tzinfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _from_file(path: str, *, key: str) -> tzinfo | None:
    try:
        with open(path, "rb") as file:
            return ZoneInfo.from_file(file, key=key)
    except (OSError, ValueError):
        return None
