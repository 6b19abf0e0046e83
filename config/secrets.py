"""Hiding passwords in database URLs before they reach a person or a log.

Pure string work: no SQLAlchemy, so it also masks text SQLAlchemy cannot parse, which is
exactly the text an error message about a bad URL has to show.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:PASSWORD@host... The user part stops at ':', '/', '@', '?' or '#', as in
# SQLAlchemy's own pattern. The password runs greedily to the LAST '@': an unescaped '@' in
# a password must not leak the rest of it, and a stray '@' later in the URL only hides more.
# Not anchored, and any number of slashes: the text to mask is often a mistyped URL.
_USERINFO_PASSWORD = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*:/*[^:/@?#]*):(?P<password>.*)@(?P<tail>[^@]*)$",
    re.DOTALL,
)

# The same without a recognisable scheme ("postgresql//u:pw@h", "u:pw@h"), tried only when
# the rule above found nothing: a bad URL is exactly what an error message shows. "://"
# after the colon is a scheme, not a password ("sqlite:///a@b" keeps its path).
_BARE_PASSWORD = re.compile(
    r"(?P<head>[^:/@?#\s]*):(?!//)(?P<password>.*)@(?P<tail>[^@]*)$",
    re.DOTALL,
)

# Query parameters that carry a password: ?password=..., and ODBC connection strings
# (odbc_connect=...;PWD=...;), raw or percent-encoded (%3D is '=', %3B ';', %26 '&').
_QUERY_PASSWORD = re.compile(
    r"(?P<head>(?:[?&;=]|%3B|%26|%3F|%3D)(?:password|passwd|pwd)(?:=|%3D))"
    r"(?P<password>.*?)(?=[&;]|%3B|%26|$)",
    re.IGNORECASE | re.DOTALL,
)


def mask_url(url: str) -> str:
    """Return ``url`` with every password in it replaced by ``***``.

    ``postgresql://u:secret@h/db`` becomes ``postgresql://u:***@h/db``; a password given as
    a query parameter (``?password=``, ODBC ``PWD=``) is hidden too. Everything else is
    left as written. Text that is not a URL at all is returned unchanged unless it looks
    like it carries a password. Never raises.
    """
    masked, found = _USERINFO_PASSWORD.subn(rf"\g<head>:{MASK}@\g<tail>", url)
    if not found:
        masked = _BARE_PASSWORD.sub(rf"\g<head>:{MASK}@\g<tail>", url)
    return _QUERY_PASSWORD.sub(rf"\g<head>{MASK}", masked)
