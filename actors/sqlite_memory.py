"""Switch off SQLite's up-front page-cache allocation for the serving process.

The first time a SQLite connection reads a page, its page cache makes one "bulk"
allocation of ``SQLITE_DEFAULT_PCACHE_INITSZ`` (20) pages, about 88 KB with 4 KiB pages,
and writes a free-list link into every slot, so all of it is resident at once.
``PRAGMA cache_size`` cannot prevent it: the pragma reads the schema, which is the first
read. The service holds one connection per practice database and reads a few small rows
through it, so at 1,000 databases this is about 75 MB of the process for pages that are
never used (measured: 110 KB of anonymous memory per open SQLite connection with it, 37 KB
without).

``sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0)`` turns the bulk allocation off;
pages are then allocated one by one as they are read, which is SQLite's documented
behaviour and changes nothing else. SQLite takes configuration only before
``sqlite3_initialize``, and Python's ``sqlite3`` module has already initialised the
library, so this shuts the library down, configures it and initialises it again. SQLite
allows that only while no connection is open, and only one thread may be inside it while
it happens: so the serving process does it first thing, before it opens a database or
starts a thread (``email-service serve`` and ``demo``), and it is refused whenever SQLite
has any memory in use, which an open connection always has.

It is done through ``ctypes`` on the very library the ``sqlite3`` module is linked with,
checked by its version (``library_path``): on Linux found through the ``_sqlite3``
extension itself; on Windows it is ``sqlite3.dll`` beside ``_sqlite3.pyd`` (the
python.org installer's ``DLLs`` folder), which Windows has already loaded for the
extension, so ``ctypes`` gets that same library. A Python whose DLL lives elsewhere
(another distribution), and macOS, skip the call with a reason and SQLite keeps its
default: about 75 MB more at 1,000 SQLite databases (the figure above).
"""

from __future__ import annotations

import ctypes
import importlib.util
import ntpath
import sqlite3
import sys

SQLITE_OK = 0
SQLITE_CONFIG_PAGECACHE = 7  # sqlite3.h: (void*, int sz, int N)


SUPPORTED_PLATFORMS = ("linux", "win32")


def library_path(extension: str, platform: str = sys.platform) -> str:
    """Return the file to load SQLite's functions from, given the ``_sqlite3``
    extension's path, on ``platform``. Pure.

    Linux: the extension itself (``dlsym`` on its handle searches the extension and the
    libraries it was linked with, so this finds SQLite whether it is linked statically
    or as a ``.so``). Windows: ``sqlite3.dll`` in the extension's folder
    (``GetProcAddress`` searches one module only, and the extension exports none of
    SQLite's functions).
    """
    if platform == "win32":
        return ntpath.join(ntpath.dirname(extension), "sqlite3.dll")
    return extension


def _library(platform: str = sys.platform) -> ctypes.CDLL:
    """Return the SQLite library the ``sqlite3`` module uses; ``OSError`` if not found."""
    spec = importlib.util.find_spec("_sqlite3")
    if spec is None or spec.origin is None:
        raise OSError("the _sqlite3 extension was not found")
    lib = ctypes.CDLL(library_path(spec.origin, platform))
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    lib.sqlite3_libversion_number.restype = ctypes.c_int
    return lib


def _version_number() -> int:
    major, minor, patch = sqlite3.sqlite_version_info
    return major * 1_000_000 + minor * 1_000 + patch


def disable_page_cache_preallocation(platform: str = sys.platform) -> str | None:
    """Turn off SQLite's bulk page-cache allocation; return ``None``, or why it was not done.

    Call it before the process opens any SQLite database and before it starts a thread
    that might. It refuses (and changes nothing) when a connection is open.
    """
    if platform not in SUPPORTED_PLATFORMS:
        return f"not done on {platform}"
    try:
        lib = _library(platform)
        shutdown, config, initialize = (
            lib.sqlite3_shutdown,
            lib.sqlite3_config,
            lib.sqlite3_initialize,
        )
    except (OSError, AttributeError) as exc:
        return f"SQLite's library cannot be reached ({exc})"
    if lib.sqlite3_libversion_number() != _version_number():
        return "SQLite's library is not the one the sqlite3 module uses"
    if lib.sqlite3_memory_used() != 0:
        return "a SQLite connection is already open"
    if shutdown() != SQLITE_OK:
        return "SQLite could not be shut down"
    try:
        code = config(SQLITE_CONFIG_PAGECACHE, None, ctypes.c_int(0), ctypes.c_int(0))
    finally:
        if initialize() != SQLITE_OK:
            raise RuntimeError("SQLite could not be initialised again")
    if code != SQLITE_OK:
        return f"SQLite refused the setting (code {code})"
    return None
