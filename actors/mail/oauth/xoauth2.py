"""The SASL XOAUTH2 initial response (Google's and Microsoft's IMAP/SMTP sign-in). Pure.

``user=MAILBOX ^A auth=Bearer TOKEN ^A ^A``, base64-encoded by the client library. For
Microsoft's app-only sign-in the user is the mailbox the app acts on.
"""

from __future__ import annotations

import base64
from collections.abc import Callable


def xoauth2_string(user: str, token: str) -> str:
    """The XOAUTH2 initial response before base64."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def xoauth2_base64(user: str, token: str) -> str:
    """The XOAUTH2 initial response as it goes on the wire (base64)."""
    return base64.b64encode(xoauth2_string(user, token).encode()).decode("ascii")


def smtp_authobject(user: str, token: str) -> Callable[..., str]:
    """The callable ``smtplib.SMTP.auth("XOAUTH2", ...)`` wants. smtplib calls it with no
    argument for an initial response, then with each ``334`` challenge decoded, and
    base64-encodes what it returns. The first challenge (empty: Microsoft's ``AUTH
    XOAUTH2`` then ``334``) gets the XOAUTH2 string; a challenge with content is the JSON
    status a server sends on refusal (Gmail's way) and gets "" so the server answers 535."""
    text = xoauth2_string(user, token)

    def answer(challenge: bytes | None = None) -> str:
        return "" if challenge else text

    return answer
