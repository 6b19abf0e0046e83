"""``serve`` raises its open-file limit: systemd's soft limit of 1,024 would stop a service
with a few hundred SQLite practice databases (3 to 5 descriptors each)."""

from __future__ import annotations

import resource
import subprocess
import sys

CHILD = """
import resource
from supervisor.commands.serve import prepare_process
prepare_process()
print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def _soft_limit_after_prepare(soft: int) -> int:
    def lower() -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        preexec_fn=lower,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(done.stdout.split()[-1])


def test_serve_raises_a_low_soft_limit_towards_the_hard_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    expected = 65_536 if hard == resource.RLIM_INFINITY else min(65_536, hard)
    assert _soft_limit_after_prepare(256) == expected


def test_serve_never_lowers_a_higher_soft_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= 65_536:
        soft = hard
    else:
        soft = 100_000 if hard == resource.RLIM_INFINITY else min(hard, 100_000)
    assert _soft_limit_after_prepare(soft) == soft
