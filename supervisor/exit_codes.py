"""The process's exit codes, named (sysexits.h values where one fits)."""

OK = 0
NOT_ALL_RUNNING = 1  # `status`: some database is not available
USAGE = 2  # bad command line (argparse's own code)
DATA_ERROR = 65  # the event log or a practice database holds something that does not decode
NO_INPUT = 66  # a file or database named on the command line does not exist
UNAVAILABLE = 69  # a database server could not be reached
SOFTWARE = 70  # an internal error: a bug, reported in one line (run with --debug for more)
CONFIG = 78  # the configuration is wrong
TREE_FAILED = 75  # the supervision tree failed: the service manager should restart us
INTERRUPTED = 130  # stopped by Ctrl-C where that is not the normal way out
BROKEN_PIPE = 141  # the reader of our output went away (`... | head`): 128 + SIGPIPE, as a
# standard tool killed by SIGPIPE reports through the shell; quiet, and visible to pipefail
ALREADY_RUNNING = 73  # another service holds this event log's or these databases' lock
# (sysexits has no "already running"; 73 is EX_CANTCREAT: the lock could not be created)


MEANINGS: dict[int, tuple[str, str]] = {
    OK: ("OK", "done"),
    NOT_ALL_RUNNING: ("NOT_ALL_RUNNING", "not every database is running"),
    USAGE: ("USAGE", "the command line is wrong"),
    DATA_ERROR: ("DATA_ERROR", "the data read does not decode"),
    NO_INPUT: ("NO_INPUT", "what was named does not exist"),
    UNAVAILABLE: ("UNAVAILABLE", "a database server could not be reached"),
    SOFTWARE: ("SOFTWARE", "an internal error"),
    CONFIG: ("CONFIG", "the configuration is wrong"),
    TREE_FAILED: ("TREE_FAILED", "the supervision tree failed"),
    INTERRUPTED: ("INTERRUPTED", "interrupted"),
    BROKEN_PIPE: ("BROKEN_PIPE", "the reader of the output went away"),
    ALREADY_RUNNING: ("ALREADY_RUNNING", "another service already runs here"),
}
"""Each code's name (as above) and what it means in words, for the one-line exit reason."""


def name_of(code: int) -> str:
    """Return the code's name (``TREE_FAILED``), or ``EXIT_<n>`` for a code not listed."""
    return MEANINGS.get(code, (f"EXIT_{code}", ""))[0]


def meaning_of(code: int) -> str:
    """Return what the code means in words ("" for a code not listed)."""
    return MEANINGS.get(code, ("", f"exited with code {code}"))[1]
