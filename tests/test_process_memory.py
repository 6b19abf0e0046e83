"""``serve`` gives memory freed inside the allocator's arenas back to the system, so its
RSS follows the memory it uses, and caps how many arenas there are
(``supervisor/process_memory.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from supervisor.process_memory import limit_arenas

CHILD = """
import json, threading
from supervisor.process_memory import release_free_memory

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024

def churn():
    # 150 MB in blocks too big for Python's own small-object allocator, freed but for the
    # last, which pins the heap's top: glibc keeps the rest in its arena.
    blocks = [bytes(1500) for _ in range(100_000)]
    keep = blocks[-1]
    del blocks
    return keep

kept = []
threads = [threading.Thread(target=lambda: kept.append(churn())) for _ in range(1)]
for t in threads: t.start()
for t in threads: t.join()
before = rss()
released = release_free_memory()
print(json.dumps({"before": before, "after": rss(), "released": released}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_memory_held_by_a_threads_arena_goes_back_to_the_system() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=120
    )
    got = json.loads(done.stdout)
    assert got["released"] is True
    assert got["before"] - got["after"] > 100 * 2**20


ARENAS_CHILD = """
import ctypes, sys, threading
from supervisor.process_memory import limit_arenas

if sys.argv[1] == "limit":
    assert limit_arenas(2, environ={}) is None
barrier = threading.Barrier(8)

def allocate():
    blocks = [bytes(2000) for _ in range(100)]  # above Python's small-object limit: malloc
    barrier.wait()  # all alive at once: a thread gets its own arena while under the cap
    del blocks

threads = [threading.Thread(target=allocate) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL("libc.so.6").malloc_stats()  # one "Arena N:" paragraph per arena, on stderr
"""


def _arenas(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}
    done = subprocess.run(
        [sys.executable, "-c", ARENAS_CHILD, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=env,
    )
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's arenas")
def test_eight_threads_share_the_two_arenas_serve_allows() -> None:
    assert _arenas("limit") <= 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's arenas")
def test_eight_threads_make_more_arenas_when_glibc_decides() -> None:
    """The baseline the test above is judged against: without the cap each thread that
    allocates while the others are alive gets an arena of its own."""
    assert _arenas("free") > 2


def test_an_arena_cap_the_operator_set_is_left_alone() -> None:
    assert limit_arenas(2, environ={"MALLOC_ARENA_MAX": "4"}) == "the environment sets it"
    tunables = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"}
    assert limit_arenas(2, environ=tunables) == "the environment sets it"
