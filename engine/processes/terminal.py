"""The terminal this process writes to, once it may be gone: a hangup (a closed terminal or tmux pane, a
dropped SSH session) leaves the process running with standard output and error pointing at nothing,
and a write to them fails. Whoever stops a run on a hangup (`cnnlab run`'s signal handler, the
console) silences the output first, so that no word of the stop can fail it.
"""

from __future__ import annotations

import errno
import os
import sys


def silence_output() -> None:
    """From now on this process's standard output and error go to /dev/null (the terminal has hung up)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.close(null)
    except OSError:
        pass


def terminal_gone() -> bool:
    """Whether this process's terminal has hung up (a closed tmux pane, a dropped SSH session)."""
    try:
        import termios  # POSIX only: elsewhere a hangup is a signal or nothing
    except ImportError:
        return False
    try:
        termios.tcgetattr(sys.stdin.fileno())
    except termios.error as err:
        return err.args[0] == errno.EIO
    except (OSError, ValueError):
        return False
    return False
