"""Giving freed memory back to the system, so the serving process's size (RSS) follows
what it uses.

glibc's allocator keeps memory a thread has freed inside that thread's arena for reuse,
and gives it back to the system only from the top of the main heap. A service with a
thread per mailbox has many arenas; each ends up holding the high-water mark of what its
thread once needed (a big message imported, a burst of mail, a restart), so RSS creeps up
for hours while the memory in use stays flat. ``bench/soak.py --diagnose`` showed exactly
that: over the last 30 minutes of a 50-minute run, memory in use (Python's objects and
``malloc``'s) stayed within 1 MB while the free memory held in arenas grew from 70 to
97 MB. ``malloc_trim(0)`` hands every whole free page of every arena back
(``madvise``), keeping the memory for reuse; ``serve`` calls it every
``TRIM_SECONDS``. Elsewhere (another C library, Windows, macOS) it does nothing.

Fewer arenas hold less: ``tune_allocator`` (called by ``serve`` before any thread
starts) caps them at ``ARENAS`` (glibc's own cap is eight per core, one per thread up to
it) and fixes the size from which a block gets its own mapping, given back when freed, at
``MMAP_THRESHOLD`` (glibc raises it, up to 32 MB, each time such a block is freed, after
which big blocks are carved from the arenas and stay there). The mailbox threads spend
most of their time waiting on the network or a database with Python's lock released, and
allocate under that lock, so they seldom contend for an arena. ``bench/soak.py`` (15
SQLite practices, 110 minutes, a fault a minute): from minute 21 to 77 the free memory
kept in the arenas grew 12 MB with glibc's defaults and 2 MB with these two settings, and
the RSS rose through the first hour by about 4 MB/h and 2 MB/h, then stayed level in
both. A setting the operator made in
the environment (``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``, ``GLIBC_TUNABLES``)
is left as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Callable, Mapping

TRIM_SECONDS = 300.0
"""How often ``serve`` gives freed memory back (each call takes a few milliseconds)."""


ARENAS = 2
"""The most arenas ``serve`` lets glibc make (``tune_allocator``)."""

MMAP_THRESHOLD = 128 * 1024
"""Blocks from this size on get their own mapping, whatever was freed before."""

_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
_M_ARENA_MAX = -8


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    libc = _libc()
    try:
        trim: Callable[[int], int] = libc.malloc_trim  # type: ignore[union-attr]
    except AttributeError:  # no C library found, or not glibc
        return None
    return trim


def release_free_memory() -> bool:
    """Give the memory freed inside the allocator's arenas back to the system; return
    whether this C library can (glibc)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def tune_allocator(environ: Mapping[str, str] | None = None) -> list[str]:
    """Set glibc's arena cap and mapping threshold (``ARENAS``, ``MMAP_THRESHOLD``) for
    what is allocated from now on; return what was left as it was, and why (empty: both
    set)."""
    env = os.environ if environ is None else environ
    libc = _libc()
    if libc is None or getattr(libc, "mallopt", None) is None or _malloc_trim() is None:
        return ["the allocator's settings: not glibc"]
    left = []
    tunables = env.get("GLIBC_TUNABLES", "")
    for name, option, value, variable, tunable in (
        ("arena cap", _M_ARENA_MAX, ARENAS, "MALLOC_ARENA_MAX", "arena_max"),
        ("mapping threshold", _M_MMAP_THRESHOLD, MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_",
         "mmap_threshold"),
    ):  # fmt: skip
        if variable in env or tunable in tunables:
            left.append(f"the allocator's {name}: set by the environment")
        elif libc.mallopt(option, value) != 1:
            left.append(f"the allocator's {name}: refused by mallopt")
    return left
