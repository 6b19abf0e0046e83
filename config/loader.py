"""Reading the configuration into one frozen ``Settings``, failing loudly by key name.

Four layers, each overriding the one before, key by key:

1. the defaults, ``config/default.toml`` inside the package (the only place defaults live);
2. a TOML file: ``path``, or else the file named by ``EMAIL_SERVICE_CONFIG``, or none;
3. environment variables ``EMAIL_SERVICE_<SECTION>_<KEY>``;
4. explicit overrides keyed ``"section.key"``.

Every value is checked in the layer it comes from, so a bad value stops start-up even when
a later layer would have replaced it. This module and nothing else reads settings from
files or the environment; it is called once, at start-up, on the calling thread.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple, cast, get_type_hints

from config.secrets import mask_url
from config.settings import Settings

ENV_PREFIX = "EMAIL_SERVICE_"
CONFIG_ENV = "EMAIL_SERVICE_CONFIG"  # reserved: the path of the configuration file
DEFAULTS_SOURCE = "the defaults (config/default.toml)"
OVERRIDES_SOURCE = "overrides"

_SHOWN_MAX = 80  # longest value quoted in an error message, so it stays one readable line
_LINE_BREAK = re.compile(r"[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_PLAIN_SQLITE = re.compile(r"sqlite:///[^?]+\Z")
"""A SQLite URL without a query: SQLAlchemy's ``make_url`` reads it as the backend
``sqlite`` and the database "everything after the third slash"."""


class ConfigError(Exception):
    """Raised when the configuration is wrong: an unknown key or environment variable, a
    value of the wrong type or out of range, or a file that cannot be read or parsed.

    ``str()`` is always one line that names the key (``section.key``) when one is at fault,
    where the value came from and what was expected; it never contains a password. ``key``
    is that key, or None when the fault is not one key's (an unreadable file, an unknown
    variable); ``source`` is where the value came from (``DEFAULTS_SOURCE``, a file path,
    ``environment variable NAME`` or ``OVERRIDES_SOURCE``), or None.
    """

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None) -> None:
        super().__init__(_one_line(message))
        self.key = key
        self.source = source


def _one_line(text: str) -> str:
    return _LINE_BREAK.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class _Rejected(Exception):
    """Raised by a rule when a value breaks it; ``reason`` is extra detail, never the value."""

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Rule:
    """What one key accepts.

    ``check`` takes a typed value (from TOML, an override, or ``parse``) and returns the value
    to store; ``parse`` turns an environment variable's text into a typed value. Both raise
    ``_Rejected``. ``text_expected`` replaces ``expected`` in messages about a variable.
    """

    expected: str
    check: Callable[[object], object]
    parse: Callable[[str], object]
    text_expected: str | None = None


def _wrong_type(value: object) -> _Rejected:
    return _Rejected(f"a {_kind(value)}")


def _as_text(text: str) -> object:
    return text


def _text(expected: str, *, strip: bool = False) -> _Rule:
    def check(value: object) -> object:
        if not isinstance(value, str):
            raise _wrong_type(value)
        return value.strip() if strip else value

    return _Rule(expected, check, _as_text)


_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})


def _flag() -> _Rule:
    def check(value: object) -> object:
        if not isinstance(value, bool):
            raise _wrong_type(value)
        return value

    def parse(text: str) -> object:
        word = text.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise _Rejected

    return _Rule("true or false", check, parse, "one of true/false, 1/0, yes/no, on/off")


def _number(minimum: float, *, inclusive: bool) -> _Rule:
    expected = f"a number {'of at least' if inclusive else 'greater than'} {minimum:g}"

    def check(value: object) -> object:
        # bool is an int in Python, but `grace_seconds = true` is a mistake, not 1 second.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong_type(value)
        try:
            number = float(value)
        except OverflowError:
            raise _Rejected("too large") from None
        if not math.isfinite(number):
            raise _Rejected("not a finite number")
        if number < minimum or (number == minimum and not inclusive):
            raise _Rejected
        return number

    def parse(text: str) -> object:
        try:
            return float(text)
        except ValueError:
            raise _Rejected from None

    return _Rule(expected, check, parse)


def _count(minimum: int) -> _Rule:
    def check(value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong_type(value)
        if value < minimum:
            raise _Rejected
        return value

    def parse(text: str) -> object:
        try:
            return int(text)
        except ValueError:
            raise _Rejected from None

    return _Rule(f"a whole number of at least {minimum}", check, parse)


def _url(*, server: bool) -> _Rule:
    if server:
        expected = (
            "a SQLAlchemy URL of a database server without a database name "
            "(such as 'postgresql://user@host') or 'sqlite:///FOLDER'"
        )
    else:
        expected = "a SQLAlchemy URL such as 'sqlite:///var/events.sqlite3'"

    def check(value: object) -> object:
        if not isinstance(value, str):
            raise _wrong_type(value)
        if _PLAIN_SQLITE.match(value):
            # Checked without importing SQLAlchemy (a workstation's ``status`` on a
            # SQLite practice never needs it), with the same outcome as below.
            if server and value.removeprefix("sqlite:///") == ":memory:":
                raise _Rejected("a SQLite server URL needs a folder")
            return value
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            # SQLAlchemy's own message quotes the whole URL, password included.
            raise _Rejected("SQLAlchemy cannot parse it") from None
        try:
            url.get_dialect()  # loads SQLAlchemy's dialect module only, never the driver
        except ArgumentError:
            raise _Rejected(f"unknown database backend {url.drivername!r}") from None
        if server:
            if url.get_backend_name() == "sqlite":
                if not url.database or url.database == ":memory:":
                    raise _Rejected("a SQLite server URL needs a folder")
            elif url.database:
                raise _Rejected(f"it names the database {url.database!r}")
        else:
            # The event log keeps seq gap-free only where it can take a write lock.
            from events.sql_store import UnsupportedStoreError, check_backend

            try:
                check_backend(value)
            except UnsupportedStoreError as exc:
                raise _Rejected(str(exc)) from None
        return value

    return _Rule(expected, check, _as_text)


_LISTEN = re.compile(r"(?:\[(?P<ipv6>[^\[\]]*)\]|(?P<host>[^\s:\[\]]+)):(?P<port>[0-9]{1,5})")


def _listen() -> _Rule:
    def check(value: object) -> object:
        if not isinstance(value, str):
            raise _wrong_type(value)
        match = _LISTEN.fullmatch(value)
        if match is None:
            raise _Rejected
        if match["ipv6"] is not None:
            try:
                ipaddress.IPv6Address(match["ipv6"])
            except ValueError:
                raise _Rejected("not an IPv6 address in the brackets") from None
        if int(match["port"]) > 65535:
            raise _Rejected("port out of range")
        return value

    return _Rule("HOST:PORT with a port from 0 to 65535 (IPv6 as '[::1]:8025')", check, _as_text)


def _host_name(entry: str) -> str:
    """Return an ``http.allowed_hosts`` entry in lower case, IPv6 without brackets."""
    text = entry.strip().lower()
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if not bare:
        wrong = "an empty name"
    elif "://" in bare or "/" in bare:
        wrong = "a scheme or path: give the name alone, such as 'mail-server.practice.lan'"
    elif "*" in bare:
        wrong = "a pattern: list each name"
    elif ":" in bare:
        try:
            return str(ipaddress.IPv6Address(bare))
        except ValueError:
            wrong = "a port or not an address: give the name or address alone"
    elif any(c.isspace() or c in "@[]" for c in bare):
        wrong = "more than one host name or address"
    else:
        return bare.rstrip(".") or bare
    raise _Rejected(f"{_shown_entry(entry)} is {wrong}")


def _shown_entry(entry: str) -> str:
    return repr(entry if len(entry) <= 40 else entry[:37] + "...")


def _host_names() -> _Rule:
    def check(value: object) -> object:
        if not isinstance(value, list | tuple):
            raise _wrong_type(value)
        names: list[str] = []
        for entry in value:
            if not isinstance(entry, str):
                raise _Rejected(f"an entry is a {_kind(entry)}, not a name")
            names.append(_host_name(entry))
        return tuple(dict.fromkeys(names))

    def parse(text: str) -> object:
        return [name for name in text.split(",") if name.strip()]

    return _Rule(
        "a list of host names or addresses, such as ['mail-server', '192.168.1.10']",
        check,
        parse,
        "host names or addresses separated by commas, such as 'mail-server,192.168.1.10'",
    )


def _file_path(expected: str) -> _Rule:
    def check(value: object) -> object:
        if not isinstance(value, str):
            raise _wrong_type(value)
        value = value.strip()
        if not value:
            raise _Rejected("empty")
        if "\0" in value:
            raise _Rejected("a NUL character")
        return value

    return _Rule(expected, check, _as_text)


def _https_url() -> _Rule:
    """An https URL; plain http only to a loopback address (a local test authority)."""

    def check(value: object) -> object:
        if not isinstance(value, str):
            raise _wrong_type(value)
        text = value.strip().rstrip("/")
        match = re.fullmatch(
            r"(https?)://([^/:?#\s]+|\[[0-9a-fA-F:]+\])(:\d{1,5})?(/[^?#\s]*)?", text
        )
        if match is None:
            raise _Rejected("not a URL")
        host = match.group(2).strip("[]")
        if match.group(1) == "http" and host not in ("127.0.0.1", "::1", "localhost"):
            raise _Rejected("plain http is only for a loopback address")
        return text

    return _Rule("an https URL", check, _as_text)


_RULES: dict[str, _Rule] = {
    "service.server_id": _text("a string (empty for this machine's host name)", strip=True),
    "service.genuine_server_check": _flag(),
    "service.event_store": _url(server=False),
    "service.key_file": _file_path("a file path (relative: to the working directory)"),
    "databases.server_url": _url(server=True),
    "databases.rescan_seconds": _number(0, inclusive=False),
    "databases.max_connections": _count(1),
    "health.checkin_seconds": _number(0, inclusive=False),
    "health.probe_seconds": _number(0, inclusive=False),
    "health.grace_seconds": _number(0, inclusive=True),
    "health.checkin_history_days": _number(0, inclusive=False),
    "supervision.max_restarts": _count(1),
    "supervision.within_seconds": _number(0, inclusive=False),
    "supervision.backoff_min_seconds": _number(0, inclusive=False),
    "supervision.backoff_max_seconds": _number(0, inclusive=False),
    "mail.outbox_poll_seconds": _number(0, inclusive=False),
    "mail.outbox_batch": _count(1),
    "mail.inbox_poll_seconds": _number(0, inclusive=False),
    "mail.io_timeout_seconds": _number(0, inclusive=False),
    "mail.ca_file": _text("a file path (empty for the system's certificate store)", strip=True),
    "mail.poison_limit": _count(1),
    "http.listen": _listen(),
    "http.allowed_hosts": _host_names(),
    "retention.enabled": _flag(),
    "retention.steady_days": _number(0, inclusive=False),
    "retention.selftest_failure_days": _number(0, inclusive=False),
    "retention.keep_days": _number(0, inclusive=False),
    "retention.checkpoint_seconds": _number(0, inclusive=False),
    "retention.prune_every_seconds": _number(0, inclusive=False),
    "retention.batch_rows": _count(1),
    "oauth.microsoft_authority": _https_url(),
    "oauth.google_token_uri": _https_url(),
    "oauth.ca_file": _text("a file path (empty for the system's certificate store)", strip=True),
    "oauth.refresh_margin_seconds": _number(0, inclusive=True),
}

# The keys are the fields of the settings classes; _RULES must cover each one.
_SECTIONS: dict[str, type[Any]] = get_type_hints(Settings)
_KEYS: tuple[str, ...] = tuple(
    f"{section}.{f.name}" for section, cls in _SECTIONS.items() for f in fields(cls)
)
_KNOWN: frozenset[str] = frozenset(_KEYS)


def env_name(key: str) -> str:
    """Return the environment variable of ``"section.key"``: ``EMAIL_SERVICE_SECTION_KEY``."""
    return ENV_PREFIX + key.replace(".", "_").upper()


_ENV_KEYS: dict[str, str] = {env_name(key): key for key in _KEYS}


class _Value(NamedTuple):
    value: object
    source: str


def load_settings(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Read the defaults, the file, the environment and ``overrides`` into one ``Settings``.

    ``path`` is the configuration file; when None, the file named by ``EMAIL_SERVICE_CONFIG``
    in ``environ`` (if set and not empty), else no file. ``environ`` defaults to
    ``os.environ``. ``overrides`` maps ``"section.key"`` to a typed value (a number for a
    number, a bool for a bool), checked like a value from the file. A blank
    ``service.server_id`` becomes ``socket.gethostname()``. Reads files; writes nothing.

    Raises ConfigError, with a one-line message naming the key and where its value came
    from, for an unknown key or ``EMAIL_SERVICE_*`` variable, a value of the wrong type or
    out of range, or a file that is missing, unreadable or not valid TOML.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    values = _from_document(_read_defaults(), DEFAULTS_SOURCE)
    for key in _KEYS:
        if key not in values:
            raise ConfigError(
                f"config: key '{key}' is missing from {DEFAULTS_SOURCE}; "
                "the installation is damaged, reinstall the package",
                key=key,
                source=DEFAULTS_SOURCE,
            )
    if path is not None:
        values.update(_from_document(_read_file(Path(path), ""), str(path)))
    elif env.get(CONFIG_ENV):
        named = Path(env[CONFIG_ENV])
        document = _read_file(named, f" (named by {CONFIG_ENV})")
        values.update(_from_document(document, str(named)))
    values.update(_from_environ(env))
    values.update(_from_overrides(overrides or {}))
    _check_together(values)
    return _build(values)


def _read_defaults() -> dict[str, Any]:
    text = resources.files("config").joinpath("default.toml").read_text(encoding="utf-8")
    return _parse_toml(text, DEFAULTS_SOURCE)


def _read_file(path: Path, named_by: str) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(
            f"config: cannot read the configuration file {path}{named_by}: {reason}; "
            "expected a readable TOML file",
            source=str(path),
        ) from None
    try:
        # utf-8-sig: Windows editors may put a byte-order mark in front.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"config: the configuration file {path}{named_by} is not UTF-8 text "
            f"(byte {error.start}); expected a TOML file saved as UTF-8",
            source=str(path),
        ) from None
    return _parse_toml(text, str(path))


_TOML_WHERE = re.compile(
    r"\s*\((?:at line (?P<line>\d+), column (?P<column>\d+)|at end of document)\)$"
)


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        reason = str(error)
        match = _TOML_WHERE.search(reason)
        where = source
        if match is not None:
            reason = reason[: match.start()]
            if match["line"] is not None:
                where = f"{source}, line {match['line']}, column {match['column']}"
            else:
                where = f"{source}, at the end"
        raise ConfigError(
            f"config: {where}: not valid TOML: {reason}; expected 'key = value' lines "
            "under [section] headers",
            source=source,
        ) from None


def _from_document(document: Mapping[str, Any], source: str) -> dict[str, _Value]:
    values: dict[str, _Value] = {}
    for section, table in document.items():
        if section not in _SECTIONS:
            what = "section" if isinstance(table, dict) else "key"
            raise ConfigError(
                f"config: unknown {what} '{section}' in {source}"
                f"{_suggest(section, [*_SECTIONS, *_KEYS])}",
                key=section,
                source=source,
            )
        if not isinstance(table, dict):
            raise ConfigError(
                f"config: '{section}' in {source} is a {_kind(table)}; "
                f"expected a table, the [{section}] header followed by its keys",
                key=section,
                source=source,
            )
        for name, value in table.items():
            key = f"{section}.{name}"
            if key not in _KNOWN:
                raise ConfigError(
                    f"config: unknown key '{key}' in {source}{_suggest(key, _KEYS)}",
                    key=key,
                    source=source,
                )
            values[key] = _Value(_checked(key, value, source), source)
    return values


def _from_environ(environ: Mapping[str, str]) -> dict[str, _Value]:
    values: dict[str, _Value] = {}
    for name, text in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        source = f"environment variable {name}"
        key = _ENV_KEYS.get(name)
        if key is None:
            raise ConfigError(
                f"config: unknown environment variable {name}; "
                f"expected {ENV_PREFIX}<SECTION>_<KEY> for a known key, or unset it"
                f"{_suggest(name, [*_ENV_KEYS, CONFIG_ENV])}",
                source=source,
            )
        rule = _RULES[key]
        try:
            value = rule.check(rule.parse(text))
        except _Rejected as rejected:
            expected = rule.text_expected or rule.expected
            raise _bad_value(key, source, expected, text, rejected) from None
        values[key] = _Value(value, source)
    return values


def _from_overrides(overrides: Mapping[str, object]) -> dict[str, _Value]:
    values: dict[str, _Value] = {}
    for key, value in overrides.items():
        if key not in _KNOWN:
            raise ConfigError(
                f"config: unknown key '{key}' in {OVERRIDES_SOURCE}{_suggest(key, _KEYS)}",
                key=key,
                source=OVERRIDES_SOURCE,
            )
        values[key] = _Value(_checked(key, value, OVERRIDES_SOURCE), OVERRIDES_SOURCE)
    return values


def _checked(key: str, value: object, source: str) -> object:
    rule = _RULES[key]
    try:
        return rule.check(value)
    except _Rejected as rejected:
        raise _bad_value(key, source, rule.expected, value, rejected) from None


def _check_together(values: Mapping[str, _Value]) -> None:
    low = values["supervision.backoff_min_seconds"]
    high = values["supervision.backoff_max_seconds"]
    if cast(float, high.value) < cast(float, low.value):
        raise _bad_value(
            "supervision.backoff_max_seconds",
            high.source,
            f"a number of at least supervision.backoff_min_seconds ({low.value!r} from "
            f"{low.source})",
            high.value,
            None,
        )
    _check_waits_below_the_hang_limit(values)


def _check_waits_below_the_hang_limit(values: Mapping[str, _Value]) -> None:
    """Refuse a network timeout that could pass for a hang.

    A mailbox that makes no progress for two check-in intervals is taken to hang and
    replaced (``supervisor.hang_rule``); one wait on a mail server must fit in half of
    that, so ``mail.io_timeout_seconds`` may be at most ``health.checkin_seconds``.
    The key named is the one that was changed (the time-out, when both were).
    """
    checkin = values["health.checkin_seconds"]
    timeout = values["mail.io_timeout_seconds"]
    if cast(float, timeout.value) <= cast(float, checkin.value):
        return
    blamed = checkin if timeout.source == DEFAULTS_SOURCE else timeout
    key = "health.checkin_seconds" if blamed is checkin else "mail.io_timeout_seconds"
    raise ConfigError(
        f"config: mail.io_timeout_seconds ({timeout.value!r}, from {timeout.source}) must be "
        f"at most health.checkin_seconds ({checkin.value!r}, from {checkin.source}): a "
        "mailbox is taken to hang after two check-in intervals without progress, and one "
        "wait on a mail server may take half of that; lower mail.io_timeout_seconds or "
        "raise health.checkin_seconds",
        key=key,
        source=blamed.source,
    )


def _build(values: Mapping[str, _Value]) -> Settings:
    chosen = {key: value.value for key, value in values.items()}
    if not chosen["service.server_id"]:
        chosen["service.server_id"] = socket.gethostname().strip()
        if not chosen["service.server_id"]:
            raise ConfigError(
                "config: service.server_id is empty and this machine reports no host name; "
                "expected a server id: set service.server_id",
                key="service.server_id",
                source=values["service.server_id"].source,
            )
    sections = {
        section: cls(**{f.name: chosen[f"{section}.{f.name}"] for f in fields(cls)})
        for section, cls in _SECTIONS.items()
    }
    return Settings(**sections)


def _bad_value(
    key: str, source: str, expected: str, value: object, rejected: _Rejected | None
) -> ConfigError:
    # Every value goes through mask_url, whatever its key: a URL pasted into the wrong key
    # must not show its password either. Mask before cutting, or the cut could drop the '@'
    # that marks where the password ends.
    shown = mask_url(repr(value))
    if len(shown) > _SHOWN_MAX:
        shown = shown[: _SHOWN_MAX - 3] + "..."
    detail = f" ({rejected.reason})" if rejected is not None and rejected.reason else ""
    return ConfigError(
        f"config: bad value for '{key}' in {source}: expected {expected}, got {shown}{detail}",
        key=key,
        source=source,
    )


def _suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    if not close and "." not in word:
        # A key written outside its section: `checkin_seconds = 15` at the top of the file.
        close = [key for key in choices if key.endswith("." + word)][:1]
    return f"; did you mean '{close[0]}'?" if close else ""


_KINDS: dict[type, str] = {
    bool: "boolean",
    int: "whole number",
    float: "fractional number",
    str: "string",
    list: "list",
    dict: "table",
}


def _kind(value: object) -> str:
    return _KINDS.get(type(value), type(value).__name__)
