"""The settings object: one frozen record per section of the configuration file.

These classes only hold values that ``config.loader.load_settings`` has already checked;
constructing one directly (in a test, say) checks nothing. Every field is one key of
``config/default.toml``, named ``section.field``. Fields that hold a database URL are
marked with ``metadata={"url": True}``: their reprs and ``settings_as_dict`` hide the
password, so a settings object can be logged or printed as it is.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from typing import Any

from config.secrets import mask_url

_URL: dict[str, Any] = {"url": True}


def _is_url(f: Field[Any]) -> bool:
    return bool(f.metadata.get("url", False))


def _masked_repr(self: Any) -> str:
    parts = []
    for f in fields(self):
        value = getattr(self, f.name)
        if _is_url(f):
            value = mask_url(value)
        parts.append(f"{f.name}={value!r}")
    return f"{type(self).__qualname__}({', '.join(parts)})"


@dataclass(frozen=True, slots=True, repr=False)
class ServiceSettings:
    """``[service]``: who this service is and where it keeps its event log.

    ``server_id`` is never empty: the loader puts this machine's host name in when the
    configuration leaves it blank. ``genuine_server_check`` selects the eligibility rule
    (see the contract). ``event_store`` is a SQLAlchemy URL; a relative SQLite path is
    relative to the working directory. ``key_file`` is the file of the key that encrypts
    the secrets saved in the practice databases (``config.key_file``); relative to the
    working directory too.
    """

    server_id: str
    genuine_server_check: bool
    event_store: str = field(metadata=_URL)
    key_file: str = "var/secret.key"

    __repr__ = _masked_repr


@dataclass(frozen=True, slots=True, repr=False)
class DatabasesSettings:
    """``[databases]``: the one database server whose practice databases are served.

    ``server_url`` is a SQLAlchemy URL without a database name, or ``sqlite:///FOLDER``
    for a folder of SQLite files; ``rescan_seconds`` is how often the server is listed
    again for new or removed databases. ``max_connections`` is the connection budget: the
    most connections the service holds to the server at once (``actors.server_budget``).
    """

    server_url: str = field(metadata=_URL)
    rescan_seconds: float
    max_connections: int

    __repr__ = _masked_repr


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """``[health]``: check-ins and self-tests, in seconds.

    A check-in is written every ``checkin_seconds``; the mail connections are probed every
    ``probe_seconds``; a workstation allows ``grace_seconds`` past a check-in's due time
    before it calls the database not available. Check-ins older than
    ``checkin_history_days`` are deleted (the table would otherwise grow for ever).
    """

    checkin_seconds: float
    probe_seconds: float
    grace_seconds: float
    checkin_history_days: float


@dataclass(frozen=True, slots=True)
class SupervisionSettings:
    """``[supervision]``: the restart policy of a mailbox.

    More than ``max_restarts`` crashes within ``within_seconds`` and the supervisor gives
    the mailbox up; between restarts it waits an exponential backoff that starts at
    ``backoff_min_seconds`` and never exceeds ``backoff_max_seconds``.
    """

    max_restarts: int
    within_seconds: float
    backoff_min_seconds: float
    backoff_max_seconds: float


@dataclass(frozen=True, slots=True)
class MailSettings:
    """``[mail]``: how each mailbox works its outbox and inbox.

    The outbox is looked at every ``outbox_poll_seconds`` and sent ``outbox_batch`` rows
    per SMTP connection; the inbox is polled every ``inbox_poll_seconds`` where the server
    has no IDLE (and IDLE is checked that often where it has); every network operation
    times out after ``io_timeout_seconds``; ``ca_file`` adds certificate authorities to
    the system's (certificates are always verified); a message that crashed the importer
    ``poison_limit`` times is parked.
    """

    outbox_poll_seconds: float
    outbox_batch: int
    inbox_poll_seconds: float
    io_timeout_seconds: float
    ca_file: str
    poison_limit: int


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """``[http]``: where the status page and API listen.

    ``listen`` is ``HOST:PORT`` as written (``[::1]:8025`` for IPv6); ``host`` and
    ``port`` are its parts, the host without brackets. Port 0 means "any free port".
    ``allowed_hosts`` are normalised (lower case, IPv6 without brackets).
    """

    listen: str
    allowed_hosts: tuple[str, ...] = ()
    """Host names and addresses the page answers to (``supervisor.http.hosts``); empty:
    the address ``listen`` binds and this machine's names. Loopback names always."""

    @property
    def host(self) -> str:
        """The host part of ``listen``, without the brackets of an IPv6 address."""
        host = self.listen.rpartition(":")[0]
        return host[1:-1] if host.startswith("[") and host.endswith("]") else host

    @property
    def port(self) -> int:
        """The port part of ``listen``."""
        return int(self.listen.rpartition(":")[2])


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    """``[retention]``: how long the event log keeps each kind of event.

    Passed self-tests are kept ``steady_days``, failed ones ``selftest_failure_days``,
    everything else ``keep_days``; the stored start-up state is saved every
    ``checkpoint_seconds``, and retention runs every ``prune_every_seconds`` in
    transactions of ``batch_rows`` events, only while ``enabled``.
    """

    enabled: bool = True
    steady_days: float = 7.0
    selftest_failure_days: float = 90.0
    keep_days: float = 400.0
    checkpoint_seconds: float = 60.0
    prune_every_seconds: float = 3600.0
    batch_rows: int = 500


@dataclass(frozen=True, slots=True)
class OAuthSettings:
    """``[oauth]``: where the OAuth 2.0 sign-in providers are reached.

    ``microsoft_authority`` is the Microsoft identity platform's scheme, host and port (the
    practice's ``oauth_tenant`` is appended); ``google_token_uri`` is Google's token
    endpoint; ``ca_file`` adds certificate authorities to the system's for these
    endpoints (always verified). An access token is fetched again
    ``refresh_margin_seconds`` before it expires. Every call to a provider times out after
    ``mail.io_timeout_seconds``.
    """

    microsoft_authority: str = "https://login.microsoftonline.com"
    google_token_uri: str = "https://oauth2.googleapis.com/token"
    ca_file: str = ""
    refresh_margin_seconds: float = 300.0


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole configuration of one service process, read once at start-up."""

    service: ServiceSettings
    databases: DatabasesSettings
    health: HealthSettings
    supervision: SupervisionSettings
    mail: MailSettings
    http: HttpSettings
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    oauth: OAuthSettings = field(default_factory=OAuthSettings)


def settings_as_dict(settings: Settings) -> dict[str, dict[str, object]]:
    """Return ``{section: {key: value}}`` for display (``--json``), passwords masked.

    Every value is a str, bool, int or float, so the result is JSON-serialisable as it is.
    """
    result: dict[str, dict[str, object]] = {}
    for section_field in fields(settings):
        section = getattr(settings, section_field.name)
        values: dict[str, object] = {}
        for f in fields(section):
            value = getattr(section, f.name)
            values[f.name] = mask_url(value) if _is_url(f) else value
        result[section_field.name] = values
    return result
