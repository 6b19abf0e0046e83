"""``serve`` gives memory freed inside the allocator's arenas back to the system, so its
RSS follows the memory it uses, and caps how many arenas there are
(``supervisor/process_memory.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from supervisor.process_memory import tune_allocator

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
from supervisor.process_memory import tune_allocator

if sys.argv[1] == "limit":
    assert tune_allocator(environ={}) == []
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


def _child(script: str, mode: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a new interpreter with glibc's own allocator settings (none
    from the environment), ``mode`` as its argument."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    return subprocess.run(
        [sys.executable, "-c", script, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=env,
    )


def _arenas(mode: str) -> int:
    done = _child(ARENAS_CHILD, mode)
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's arenas")
def test_eight_threads_share_the_two_arenas_serve_allows() -> None:
    assert _arenas("limit") <= 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's arenas")
def test_eight_threads_make_more_arenas_when_glibc_decides() -> None:
    """The baseline the test above is judged against: without the cap each thread that
    allocates while the others are alive gets an arena of its own."""
    assert _arenas("free") > 2


MMAP_CHILD = """
import ctypes, sys
from supervisor.process_memory import tune_allocator

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "tuned":
    assert tune_allocator(environ={}) == []
libc.free(libc.malloc(4 << 20))  # freeing a mapped 4 MB block raises glibc's threshold
before = libc.mallinfo2().hblks
block = libc.malloc(256 << 10)
print(libc.mallinfo2().hblks - before)  # 1: the 256 KB block has its own mapping
libc.free(block)
"""


def _mapped(mode: str) -> int:
    return int(_child(MMAP_CHILD, mode).stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mmap threshold")
def test_a_big_block_gets_its_own_mapping_whatever_was_freed_before() -> None:
    assert _mapped("tuned") == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mmap threshold")
def test_glibc_alone_carves_a_big_block_from_the_arena_after_a_bigger_one_was_freed() -> None:
    """The baseline the test above is judged against."""
    assert _mapped("default") == 0


def test_allocator_settings_the_operator_made_are_left_alone() -> None:
    left = tune_allocator(environ={"MALLOC_ARENA_MAX": "4", "MALLOC_MMAP_THRESHOLD_": "1"})
    assert left == [
        "the allocator's arena cap: set by the environment",
        "the allocator's mapping threshold: set by the environment",
    ]
    tunables = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"}
    assert tune_allocator(environ=tunables) == ["the allocator's arena cap: set by the environment"]
