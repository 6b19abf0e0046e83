"""The sign-in package's one exception."""

from __future__ import annotations


class OAuthError(Exception):
    """Raised when an access token cannot be had: the provider refused (``code`` is its
    error, e.g. ``invalid_grant`` or ``AADSTS700082``) or could not be reached (``code``
    is ""). ``str()`` is one line keeping the provider's own words; it never holds a
    token, a client secret or a key."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code
