"""The serving process's limit on open files, raised to what the system allows.

Each served SQLite practice database holds three descriptors (the file, its ``-wal`` and
``-shm``), and SQLite keeps up to two more per file: on Unix, closing a connection to a
file that another connection of the same process holds locked cannot close the
descriptor without dropping that lock, so SQLite keeps it and reuses it for the next open
with the same flags (the service's own connection, the status page's read-only reads).
Measured in ``bench/soak.py``: 3 to 4 descriptors per SQLite file after warm-up, flat
from there. systemd starts a service with a soft limit of 1,024 (its hard limit is far
higher), so past about 250 SQLite databases the service would fail to open files. So
``serve`` raises its soft limit to its hard limit, at most ``WANTED`` (the unit in
``deploy/`` also asks for ``LimitNOFILE=65536``). Windows has no such limit.
"""

from __future__ import annotations

WANTED = 65_536
"""The soft limit ``serve`` asks for (lowered to the hard limit where that is lower)."""


def raise_open_file_limit(wanted: int = WANTED) -> tuple[int, int] | None:
    """Raise this process's soft limit on open files towards ``wanted`` (never above the
    hard limit, never lowered); return ``(before, after)`` when it changed, else None."""
    try:
        import resource  # Unix only
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return None
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return soft, target
