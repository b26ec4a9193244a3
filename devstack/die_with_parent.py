"""`python -I die_with_parent.py PARENT_PID COMMAND...`: exec COMMAND so that the kernel sends it
SIGTERM when the stack's process dies, even by SIGKILL (Linux `PR_SET_PDEATHSIG`).

A wrapper and not a `preexec_fn`: code run between fork and exec can deadlock in a process
with threads (pytest's, asyncio's executor), and Python warns against it. The setting
survives the exec; where prctl does not exist (macOS) the command just runs.
Run with `-I` and nothing imported but the standard library: it costs ~20 ms per service.
"""

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main() -> None:
    parent, command = int(sys.argv[1]), sys.argv[2:]
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # no prctl here: the stack's own stop (and atexit) is all there is
    if os.getppid() != parent:
        sys.exit(f"die_with_parent: process {parent} is gone; not starting {command[0]}")
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
