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
