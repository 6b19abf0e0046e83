"""The wizard's first screen: the service-wide settings and which databases are served. Pure.

The same facts ``email-service databases`` and ``login-check`` show, from the same
functions (``supervisor.discovery`` and ``supervisor.eligibility``), so the screen never
disagrees with them. The database server's URL is shown with its password masked.
"""

from __future__ import annotations

from collections.abc import Sequence

from config import mask_url
from config.settings import ServiceSettings
from supervisor.discovery import DatabaseInfo
from supervisor.eligibility import login_warning


def table_lines(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Return a plain aligned table, a dashed line under the headers."""
    cells = [list(headers)] + [list(r) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def first_screen(
    service: ServiceSettings,
    server_url: str,
    infos: Sequence[DatabaseInfo],
    chosen: DatabaseInfo,
) -> list[str]:
    """Return the first screen's lines for setting up ``chosen``: the service-wide
    settings, every database on the server (served or not, and why), and the login
    check's warning when ``chosen`` is not served."""
    practice = f" (practice {chosen.practice_name!r})" if chosen.practice_name else ""
    lines = [
        f"Email Setup Wizard for database {chosen.name!r}{practice}",
        "",
        "Service-wide settings (the same for every database; they are changed in the",
        "configuration file, see docs/configuration.md):",
        f"  This server's identity (service.server_id):   {service.server_id}",
        "  Genuine Server Check (service.genuine_server_check): "
        + ("on" if service.genuine_server_check else "off"),
        f"  Database server (databases.server_url):       {mask_url(server_url)}",
        "",
        "Databases on the database server, and whether this service serves them:",
    ]
    rows = [
        [
            info.name,
            info.practice_name or ("-" if info.is_practice else "(not a practice database)"),
            "yes" if info.eligibility.eligible else "no",
            info.eligibility.reason,
        ]
        for info in infos
    ]
    lines += ["  " + line for line in table_lines(["Name", "Practice", "Served", "Why"], rows)]
    warning = login_warning(chosen.eligibility)
    if warning is not None:
        lines += [
            "",
            f"{warning}: the service does not send or receive email for {chosen.name!r} "
            f"({chosen.eligibility.reason}). Its settings can still be saved, for when it is.",
        ]
    return lines
