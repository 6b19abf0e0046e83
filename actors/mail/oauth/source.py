"""An access token kept in memory, fetched again before it expires or after a refusal.

``TokenSource`` is the part every provider shares; a provider's subclass says how to
fetch (``_fetch``). The token lives only in this object (never in a database, an event
or a log). ``token()`` returns the kept token while it has more than ``margin`` seconds
left by ``clock.monotonic()`` (half its life for a token that lives less than twice
``margin``), else fetches a new one. ``refused(token)`` is what a mail
server's refusal of ``token`` calls: the token is forgotten, so the next ``token()``
fetches. Fetch failures raise ``OAuthError`` and keep nothing; a refusal (an error
with a provider's ``code``) is raised again without asking for ``REFUSAL_PAUSE`` seconds,
unless the settings change (``forget``).

Thread-safe (one lock per source): the mailbox's thread and a probe may ask together.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from actors.mail.oauth.errors import OAuthError
from events.clock import Clock

DEFAULT_LIFETIME = 3600.0
"""Seconds a token is taken to live when the provider does not say."""
REFUSAL_PAUSE = 60.0
"""Seconds a provider's refusal (a wrong secret, a revoked sign-in) is given again without
asking: it stays until a person acts, and the provider is asked at most once a minute."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """What a provider gave: the access token and how many seconds it lives."""

    token: str
    expires_in: float


class TokenSource:
    """One mailbox's access tokens at one provider; see the module docstring.

    ``user`` is the mailbox to sign in as (the XOAUTH2 ``user=``); ``provider`` and
    ``flow`` name the way (``microsoft``/``google``, ``app``/``delegated``).
    """

    provider = ""
    flow = ""

    def __init__(self, user: str, *, clock: Clock, margin: float) -> None:
        self.user = user
        self._clock = clock
        self._margin = margin
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._refusal: OAuthError | None = None
        self._refusal_until = 0.0
        self.fetches = 0

    def token(self) -> str:
        """A live access token: the kept one, or a new one. Raises ``OAuthError``."""
        with self._lock:
            now = self._clock.monotonic()
            if self._token is not None and now < self._refresh_at:
                return self._token
            self._token = None
            if self._refusal is not None and now < self._refusal_until:
                raise OAuthError(str(self._refusal), code=self._refusal.code)
            self._refusal = None
            try:
                fetched = self._fetch()
            except OAuthError as exc:
                if exc.code:
                    self._refusal, self._refusal_until = exc, now + REFUSAL_PAUSE
                raise
            self.fetches += 1
            if not fetched.token:
                raise OAuthError(f"{self.provider} sign-in gave no access token")
            self._token = fetched.token
            life = max(0.0, fetched.expires_in)
            self._refresh_at = now + life - min(self._margin, life / 2)
            return fetched.token

    def refused(self, token: str) -> None:
        """A mail server refused ``token``: forget it (if it is still the kept one)."""
        with self._lock:
            if self._token == token:
                self._token = None

    def forget(self) -> None:
        """Drop the kept token and a remembered refusal (settings changed)."""
        with self._lock:
            self._token = None
            self._refusal = None

    def _fetch(self) -> Fetched:
        """Ask the provider for a new access token. Raises ``OAuthError``."""
        raise NotImplementedError


class DelegatedSource(TokenSource):
    """A source that holds a person's refresh token (``refresh_token``), which the
    provider may replace at a use (Microsoft always does): the new one is held at once and
    handed to ``save_refresh_token`` before the access token is used.

    ``adopt(token)`` is told the refresh token the settings hold now: one this source
    never held is a new sign-in (the wizard saved it) and replaces the held one; one it
    held (its own saved replacement read back, or an older one when a save failed) is
    ignored. ``is_own(token)`` says which.
    """

    def __init__(
        self,
        user: str,
        *,
        refresh_token: str,
        save_refresh_token: Callable[[str], None] | None,
        clock: Clock,
        margin: float,
    ) -> None:
        super().__init__(user, clock=clock, margin=margin)
        self.refresh_token = refresh_token
        self.save_refresh_token = save_refresh_token
        self._held: deque[str] = deque([refresh_token], maxlen=16)

    def is_own(self, refresh_token: str) -> bool:
        """Whether this source held ``refresh_token`` (now or lately)."""
        with self._lock:
            return refresh_token in self._held

    def adopt(self, refresh_token: str) -> None:
        """See the class docstring."""
        if not refresh_token or self.is_own(refresh_token):
            return
        with self._lock:
            self.refresh_token = refresh_token
            self._held.append(refresh_token)
        self.forget()

    def _replaced(self, rotated: str) -> None:
        """The provider handed ``rotated`` back (called from ``_fetch``, lock held)."""
        if not rotated or rotated == self.refresh_token:
            return
        self.refresh_token = rotated
        self._held.append(rotated)
        if self.save_refresh_token is not None:
            self.save_refresh_token(rotated)
