"""The connection-budget lines under ``email-service databases``' table.

The budget and the server's limit come from this command's own look at the server (its
listing connection reads the limit, ``actors.server_budget``); the connections the
running service holds come from the service itself, over its ``/metrics``
(``email_service_db_connections``), because only the service knows which connections are
its own on every kind of server (MariaDB's process list does not say which program a
connection belongs to). Runs in the command's thread; never raises.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request

from actors.server_budget import SERVER_SHARE, BudgetView
from config import Settings

METRICS_TIMEOUT_SECONDS = 2.0

_HELD = re.compile(r'^email_service_db_connections\{server="(?P<server>[^"]*)"\} (?P<n>\S+)$')


def metrics_url(settings: Settings) -> str | None:
    """Where the running service serves ``/metrics``; None when the port is chosen at start."""
    if settings.http.port == 0:
        return None
    host = settings.http.host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.http.port}/metrics"


def held_by_service(text: str) -> dict[str, int]:
    """The service's connections per server, from its ``/metrics`` text. Pure."""
    held: dict[str, int] = {}
    for line in text.splitlines():
        match = _HELD.match(line)
        if match:
            held[match["server"]] = int(float(match["n"]))
    return held


def _fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=METRICS_TIMEOUT_SECONDS) as response:
            body: bytes = response.read()
            return body.decode("utf-8", "replace")
    except (OSError, urllib.error.URLError, ValueError):
        return None


def budget_lines(settings: Settings, views: list[BudgetView]) -> list[str]:
    """One line per database server: the budget, the server's limit, and what the running
    service holds there (or why that is not known)."""
    if not views:
        return []
    url = metrics_url(settings)
    text = _fetch(url) if url is not None else None
    held = held_by_service(text) if text is not None else None
    lines = []
    for view in views:
        limit = "unknown" if view.server_limit is None else str(view.server_limit)
        line = (
            f"Connection budget on {view.server}: {view.budget} (databases.max_connections "
            f"{view.configured}; the server accepts {limit} from this login, the service "
            f"takes at most {SERVER_SHARE:.0%} of that)"
        )
        if held is not None:
            line += f"; the email service holds {held.get(view.server, 0)} of them now."
        elif url is None:
            line += "; http.listen has port 0, so the service's own count cannot be asked."
        else:
            line += f"; the email service does not answer on {url}, so its count is unknown."
        lines.append(line)
    return lines
