"""What may be shown of a server's words without letting a reader infer a secret. Pure.

Replacing each occurrence of a password by ``***`` discloses it: with the password
``nothing``, "port closed: nothing accepts connections" becomes "port closed: ***
accepts connections", and anyone who reads the status page can fill in the blank. So no
text is ever rewritten word by word. Instead:

- Text this service wrote itself, or that a server sent in an exchange that did not carry
  a secret (a refused recipient, a closed port), cannot depend on the secret: it is shown
  as it is (``one_line``), whatever words it happens to share with a password.
- Text a server sent in reply to an exchange that carried a secret (SMTP ``AUTH``, IMAP
  ``LOGIN``/``AUTHENTICATE``, an SMS gateway's answer to a request with basic
  authentication; ``auth_reply``) is kept only in a form that cannot carry it: its codes
  (the SMTP reply code and enhanced status ``535 5.7.8``, an IMAP response code
  ``[AUTHENTICATIONFAILED]``, an HTTP status), then the server's words only when they hold
  none of the secrets: not as they are (in any case), nor base64-encoded at any alignment
  (standard or URL-safe: how ``AUTH PLAIN``, XOAUTH2 and basic authentication send them),
  nor percent-encoded. Otherwise the words are replaced as a whole by ``HIDDEN``.

What is shown then depends on a secret in one way only: whether the words were hidden.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from urllib.parse import unquote, unquote_plus

HIDDEN = "[words withheld: they could contain the password]"
"""Stands for the whole of a reply that held a secret in some form."""

_CODES = re.compile(
    r"^\s*(?P<codes>(?:(?:[1-5][0-9]{2}|[245]\.[0-9]{1,3}\.[0-9]{1,3}|\[[A-Z][A-Z0-9-]*\])"
    r"(?:[\s-]+|$))*)"
)
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{2,}")
_SPACE = re.compile(r"\s+")


def one_line(text: str, limit: int = 500) -> str:
    """Return ``text`` on one line (every run of white space or control characters one
    space) and at most ``limit`` characters; the words themselves unchanged."""
    line = _SPACE.sub(" ", "".join(c if c.isprintable() else " " for c in text)).strip()
    return line if len(line) <= limit else line[: limit - 3] + "..."


def auth_reply(text: str, secrets: Iterable[str], limit: int = 500) -> str:
    """Return a reply from an authentication exchange, on one line, in a form that cannot
    carry any of ``secrets``: its leading codes, then its words, or ``HIDDEN`` in their
    place when the reply holds a secret in any form (``holds_secret``)."""
    line = one_line(text, limit=len(text) + 1)
    if not holds_secret(line, secrets):
        return one_line(line, limit)
    return withheld(line)


def withheld(text: str) -> str:
    """Return what ``auth_reply`` shows of ``text`` when it holds a secret: its leading
    codes (taken from the reply, whatever the secret) and ``HIDDEN``."""
    codes = _CODES.match(one_line(text, limit=len(text) + 1))
    prefix = " ".join(codes["codes"].replace("-", " ").split()) if codes else ""
    return f"{prefix} {HIDDEN}" if prefix else HIDDEN


def holds_secret(text: str, secrets: Iterable[str]) -> bool:
    """Whether ``text`` holds any non-empty one of ``secrets``: as it is (ignoring case),
    percent-encoded, or base64-encoded (at any alignment, standard or URL-safe)."""
    given = [s for s in secrets if s]
    if not given:
        return False
    # As the text was put on one line, so is each secret (a password with a tab in it).
    wanted = list(dict.fromkeys([*given, *(one_line(s, len(s) + 1) for s in given)]))
    wanted = [s for s in wanted if s]
    folded = text.casefold()
    readable = {folded, unquote(text).casefold(), unquote_plus(text).casefold()}
    if any(s.casefold() in t for s in wanted for t in readable):
        return True
    encoded = [s.encode("utf-8") for s in wanted]
    decoded = _decodings(text)
    return any(e in d or e.lower() in d.lower() for e in encoded for d in decoded)


def _decodings(text: str) -> list[bytes]:
    """Every base64 decoding of every run of base64 characters in ``text`` (after
    percent-decoding too), from each of the four starting positions."""
    found: list[bytes] = []
    for source in {text, unquote(text)}:
        for match in _BASE64_RUN.finditer(source):
            run = match.group().replace("-", "+").replace("_", "/")
            for start in range(4):
                part = run[start:]
                rest = len(part) % 4
                # A last group of 2 or 3 characters is a padded one with its '=' cut off.
                part = part[:-1] if rest == 1 else part + "=" * ((4 - rest) % 4)
                if not part:
                    continue
                try:
                    found.append(base64.b64decode(part, validate=True))
                except (binascii.Error, ValueError):
                    continue
    return found
