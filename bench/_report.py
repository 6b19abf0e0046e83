"""What the benchmarks share: the machine they ran on and the results table.

``bench/events.py`` and ``bench/supervision.py`` each measure their own figures and
print them in the same shape: lines about the machine and the configuration, then one
table with a row per figure (ours, the baseline, the ratio, the target, met or not).
"""

from __future__ import annotations

import os
import platform
import sqlite3
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One line of the table."""

    figure: str
    ours: str
    baseline: str
    ratio: str
    target: str
    met: str


HEADER = Row("figure", "ours", "baseline", "ratio", "target", "met?")


def met(ok: bool) -> str:
    """Return the table's word for a target: ``yes`` or ``MISSED``."""
    return "yes" if ok else "MISSED"


def filesystem(path: Path) -> str:
    """Return the type of the filesystem holding ``path`` (Linux), else "unknown"."""
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                parts = line.split()
                mount = parts[1]
                inside = str(path).startswith(mount.rstrip("/") + "/") or str(path) == mount
                if len(parts) > 2 and inside and len(mount) > len(best):
                    best, kind = mount, parts[2]
    except OSError:
        pass
    return kind


def machine_info(folder: Path, packages: tuple[str, ...] = ()) -> dict[str, Any]:
    """Return what the figures depend on besides the code.

    CPUs, Python, the platform, SQLite and SQLAlchemy, the versions of ``packages``
    (keyed by name), and where the temporary files were (folder and filesystem).
    """
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": metadata.version("sqlalchemy"),
    }
    for name in packages:
        info[name] = metadata.version(name)
    info["temp_dir"] = str(folder)
    info["filesystem"] = filesystem(folder)
    return info


def print_machine(machine: dict[str, Any], extra: str = "") -> None:
    """Print the two ``machine:`` lines; ``extra`` ends the first (other versions)."""
    m = machine
    print(
        f"machine: {m['cpu_count']} CPUs, Python {m['python']}, SQLite {m['sqlite']},"
        f" SQLAlchemy {m['sqlalchemy']}{extra}"
    )
    print(f"         {m['platform']}; temp files on {m['filesystem']} ({m['temp_dir']})")


def print_table(rows: list[Row]) -> None:
    """Print the rows under a header, the first column left-aligned, the rest right."""
    table = [HEADER, *rows]
    widths = [max(len(getattr(r, f)) for r in table) for f in asdict(HEADER)]
    for i, row in enumerate(table):
        cells = list(asdict(row).values())
        line = "  ".join(
            cell.ljust(w) if j == 0 else cell.rjust(w)
            for j, (cell, w) in enumerate(zip(cells, widths, strict=True))
        )
        print(line.rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
