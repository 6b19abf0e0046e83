"""How long an outbox row waits before its next attempt. Pure: the jitter is passed in.

``retry_delay(attempts, jitter)`` doubles from ``BASE_SECONDS`` after the first failed
attempt up to ``CAP_SECONDS``, then stretches it by up to ``JITTER_SHARE`` (``jitter`` is a
draw in [0, 1)), so rows that failed together do not all come back in the same second.
After ``MAX_ATTEMPTS`` attempts a row that keeps getting temporary failures is failed.
"""

from __future__ import annotations

BASE_SECONDS = 60.0
CAP_SECONDS = 3600.0
JITTER_SHARE = 0.25
MAX_ATTEMPTS = 30
"""With the cap this is about a day of trying, as a mail server would."""


def retry_delay(attempts: int, jitter: float) -> float:
    """Return the seconds to wait after ``attempts`` attempts (1 after the first) failed."""
    if attempts < 1:
        raise ValueError(f"attempts is {attempts}; the delay follows at least one attempt")
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter is {jitter}; expected a draw in [0, 1)")
    steps = min(attempts - 1, 32)  # 2**32 minutes is far past the cap
    return min(CAP_SECONDS, BASE_SECONDS * 2.0**steps) * (1.0 + JITTER_SHARE * jitter)
