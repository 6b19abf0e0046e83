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
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

TRIM_SECONDS = 300.0
"""How often ``serve`` gives freed memory back (each call takes a few milliseconds)."""


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
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
