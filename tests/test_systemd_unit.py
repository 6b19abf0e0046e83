"""The shipped systemd unit (deploy/email-service.service), checked by systemd itself.

``systemd-analyze verify`` loads the unit as systemd would; ``systemd-analyze security
--offline=yes`` rates its sandbox. Neither needs systemd as PID 1. ``verify`` also checks
that ``ExecStart``'s program exists, so it runs on a root folder holding the system's unit
files, the unit, and a stand-in for ``/opt/email-service/.venv/bin/email-service``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

UNIT = Path(__file__).resolve().parent.parent / "deploy" / "email-service.service"
ANALYZE = "/usr/bin/systemd-analyze"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")
EXPOSURE_LIMIT = 1.1
"""The exposure this unit reached (systemd 252: 7.6 "EXPOSED" before the hardening)."""


def _exec_start(unit_text: str) -> str:
    [line] = [x for x in unit_text.splitlines() if x.startswith("ExecStart=")]
    return line.removeprefix("ExecStart=").split()[0]


def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path: Path) -> None:
    assert Path(ANALYZE).exists(), f"{ANALYZE} is missing: run scripts/test-services.sh"
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / SYSTEM_UNITS.relative_to("/"), symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system" / UNIT.name)
    program = root / _exec_start(UNIT.read_text()).lstrip("/")
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    done = subprocess.run(
        [ANALYZE, "verify", f"--root={root}", UNIT.name],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_systemd_analyze_security_rates_the_unit_ok_at_its_reached_level() -> None:
    assert Path(ANALYZE).exists(), f"{ANALYZE} is missing: run scripts/test-services.sh"
    done = subprocess.run(
        [ANALYZE, "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", done.stdout)
    assert found is not None, done.stdout + done.stderr
    level, word = float(found[1]), found[2]
    print(f"systemd-analyze security: {level} {word} (limit {EXPOSURE_LIMIT})")
    assert (level <= EXPOSURE_LIMIT, word) == (True, "OK")
