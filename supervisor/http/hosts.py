"""Which names the status page answers to: the defence against DNS rebinding.

A web page elsewhere can point a name it controls (``evil.example``) at this server's
address once the browser has loaded it; the browser then lets that page read and POST to
the status page as if it were its own site. What gives it away is the ``Host`` header: the
browser sends the name the page was loaded from. So a request is answered only when its
``Host`` names this server: an entry of ``http.allowed_hosts`` (default: the address
``http.listen`` binds and this machine's own names), or a loopback name, which no other
site can use. A state-changing request's ``Origin``, when sent, must name an allowed host
too. The port is not compared; names are compared without case and without a final dot;
an IPv6 address may be written with or without brackets. Pure, except that
``default_hosts`` reads this machine's names.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection, Iterable
from urllib.parse import urlsplit

LOOPBACK_NAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
"""Always allowed: only a browser on this machine itself can send them."""

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_SHOWN_MAX = 80


def normalise(name: str) -> str:
    """Return ``name`` as compared: lower case, no IPv6 brackets, no final dot."""
    name = name.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if ":" in name:
        return _address_or_none(name) or name
    return name.rstrip(".") if name not in (".", "") else name


def host_of(header: str) -> str | None:
    """Return the host named by a ``Host`` header (``name``, ``name:port``, ``[v6]:port``),
    normalised, or None when the header is not of that form."""
    text = header.strip()
    if not text or any(c.isspace() for c in text) or "/" in text or "@" in text:
        return None
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not _is_port(rest)):
            return None
        return _address_or_none(inside)
    name, colon, port = text.rpartition(":")
    if not colon:
        name = text
    elif ":" in name:  # a bare IPv6 address, as some clients send it
        return _address_or_none(text)
    elif not port.isdigit():
        return None
    return normalise(name) or None


def origin_host(origin: str) -> str | None:
    """Return the host of an ``Origin`` header (``http://name:port``), or None for
    ``null`` and anything that is not an http(s) origin."""
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return host_of(parts.netloc)


def default_hosts(listen_host: str) -> tuple[str, ...]:
    """The names allowed when ``http.allowed_hosts`` is empty: the address ``http.listen``
    binds (unless it is a wildcard) and this machine's names (``gethostname``,
    ``getfqdn``)."""
    # A wildcard (0.0.0.0, ::) is where to listen, never a name a browser should use.
    bound = "" if normalise(listen_host) in ("0.0.0.0", "::") else listen_host
    names = [bound, socket.gethostname(), socket.getfqdn()]
    return tuple(dict.fromkeys(normalise(n) for n in names if n and n.strip()))


def allowed_hosts(listen_host: str, configured: Iterable[str]) -> frozenset[str]:
    """Every name the page answers to: ``configured`` (else the defaults) and loopback."""
    chosen = tuple(normalise(n) for n in configured) or default_hosts(listen_host)
    return frozenset((*chosen, *LOOPBACK_NAMES))


def refusal(
    method: str, host: str | None, origin: str | None, allowed: Collection[str]
) -> tuple[int, str] | None:
    """Return ``(status, one-line reason)`` when a request must be refused before any
    route runs, or None when it may go on. ``host``/``origin`` are the raw headers."""
    if host is None:
        return 400, "the request has no Host header"
    name = host_of(host)
    if name is None:
        return 400, f"the Host header is not a host name: {_shown(host)}"
    if name not in allowed:
        return (
            421,
            f"this server does not answer to the name {_shown(name)}; "
            "its operator can add the name to http.allowed_hosts",
        )
    if method.upper() not in SAFE_METHODS and origin is not None:
        from_name = origin_host(origin)
        if from_name is None or from_name not in allowed:
            return 403, f"cross-site request refused (Origin {_shown(origin)} is not this server)"
    return None


def _is_port(text: str) -> bool:
    return text.startswith(":") and text[1:].isdigit()


def _address_or_none(text: str) -> str | None:
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        return None


def _shown(text: str) -> str:
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return repr(clean if len(clean) <= _SHOWN_MAX else clean[: _SHOWN_MAX - 3] + "...")
