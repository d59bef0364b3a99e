"""How a command ends: its exit code, and the one place where an error becomes a message and a code.

    0    finished
    1    failed or diverged (the run, the bench, an evaluation did not succeed)
    2    bad input: an invalid experiment or sweep, an unknown preset or key, a missing file or dataset
    130  stopped (Ctrl+C); what was stopped can be resumed

Commands raise; `handle` prints. A command never prints its own errors, so every command words
them alike and exits alike. A disk that is full is a failure (1), a path that cannot be written (read
only, a file where a folder should be) bad input (2); an exception nobody expected is a bug, said in
one line (CNNLAB_DEBUG=1 prints its traceback), never a traceback on its own.
"""

from __future__ import annotations

import errno
import os
import traceback
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape

from engine.events import RunDiverged, RunFailed, RunFinished, RunStopped

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 130

# The end state a run leaves in its folder (engine.events' end events name them), as an exit code.
EXIT_BY_STATE = {
    RunFinished.state: EXIT_OK,
    RunStopped.state: EXIT_STOPPED,
    RunFailed.state: EXIT_FAILED,
    RunDiverged.state: EXIT_FAILED,
}


class UsageError(Exception):
    """Input the command cannot act on; the message says what to give instead. Exits 2."""


class CommandFailed(Exception):
    """The command ran and did not succeed (a bench, an evaluation). Exits 1."""

    def __init__(self, headline: str, detail: str):
        super().__init__(f"{headline}: {detail}")
        self.headline, self.detail = headline, detail


def exit_code(state: str) -> int:
    """The exit code of a run (or sweep) that ended in `state`; anything unknown is a failure."""
    return EXIT_BY_STATE.get(state, EXIT_FAILED)


def handle(command: Callable[[Any], int], args: Any, err: Console) -> int:
    """Run `command(args)` and turn what it raises into one message on stderr and an exit code.

    `args.subject` names what an invalid config was ("experiment", "sweep") in the message.
    """
    from engine.experiment.errors import SHOWN_PROBLEMS, ConfigError  # pydantic: only once a command runs
    from engine.files import os_error_text

    try:
        return command(args)
    except ConfigError as e:
        subject = getattr(args, "subject", "experiment")
        err.print(
            f"[bold red]invalid {subject}[/]" + (f" in {escape(e.source)}" if e.source else "") + ":", highlight=False
        )
        for loc, msg in e.problems[:SHOWN_PROBLEMS]:
            err.print(f"  [cyan]{escape(loc or f'({subject})')}[/]: {escape(msg)}", highlight=False, soft_wrap=True)
        if len(e.problems) > SHOWN_PROBLEMS:
            err.print(f"  … and {len(e.problems) - SHOWN_PROBLEMS} more problems", highlight=False)
        return EXIT_USAGE
    except CommandFailed as e:
        err.print(f"[bold red]{escape(e.headline)}:[/] {escape(e.detail)}", highlight=False)
        return EXIT_FAILED
    except (UsageError, KeyError, FileNotFoundError, ValueError) as e:  # UnknownPreset is a KeyError
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        err.print(f"[bold red]error:[/] {escape(str(msg))}", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    except OSError as e:  # after FileNotFoundError above: a full disk, a read-only or unwritable path
        err.print(f"[bold red]error:[/] {escape(os_error_text(e))}", highlight=False, soft_wrap=True)
        return EXIT_FAILED if e.errno in (errno.ENOSPC, errno.EDQUOT) else EXIT_USAGE
    except KeyboardInterrupt:
        err.print("aborted")
        return EXIT_STOPPED
    except Exception as e:  # a bug: one line that says so, the traceback only when asked for
        if os.environ.get("CNNLAB_DEBUG"):
            traceback.print_exc()
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        err.print(
            f"[bold red]internal error[/] (a bug in cnnlab; CNNLAB_DEBUG=1 shows where): "
            f"{escape(type(e).__name__)}{': ' + escape(first) if first else ''}",
            highlight=False,
            soft_wrap=True,
        )
        return EXIT_FAILED
