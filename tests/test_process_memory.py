"""``serve`` gives memory freed inside the allocator's arenas back to the system, so its
RSS follows the memory it uses (``supervisor/process_memory.py``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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
