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

Fewer arenas hold less: ``limit_arenas`` (called by ``serve`` before any thread starts)
caps them at ``ARENAS`` (glibc's own cap is eight per core, one per thread up to it),
unless the operator set ``MALLOC_ARENA_MAX`` (or ``GLIBC_TUNABLES``) themselves. The
mailbox threads spend most of their time waiting on the network or a database with
Python's lock released, and allocate under that lock, so they seldom contend for an
arena.
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
"""The most arenas ``serve`` lets glibc make (``limit_arenas``)."""

_M_ARENA_MAX = -8  # glibc's malloc.h


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


def limit_arenas(count: int = ARENAS, environ: Mapping[str, str] | None = None) -> str | None:
    """Cap glibc's arenas at ``count`` for the threads started from now on; return None
    when done, else why not (the operator set the cap, or this is not glibc)."""
    env = os.environ if environ is None else environ
    if "MALLOC_ARENA_MAX" in env or "arena_max" in env.get("GLIBC_TUNABLES", ""):
        return "the environment sets it"
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    if mallopt is None or getattr(libc, "malloc_trim", None) is None:
        return "not glibc"
    if mallopt(_M_ARENA_MAX, count) != 1:
        return "mallopt refused it"
    return None
