"""The global options: they work before or after the command, and are listed once, here.

`cnnlab --runs-dir DIR presets` and `cnnlab presets --runs-dir DIR` mean the same. The `cnnlab`
entry point tells a command from global options alone (which open the console) with
`command_words`, without building the parser.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.runfolder.folder import default_runs_dir

# Every global option takes one value.
GLOBAL_OPTIONS = {"--runs-dir": "runs folder (default ./runs or $CNNLAB_RUNS); your presets live in its presets/"}


def command_words(argv: list[str]) -> list[str]:
    """argv without the global options and their values: empty when no command was given."""
    words, i = [], 0
    while i < len(argv):
        name, eq, _ = argv[i].partition("=")
        if name in GLOBAL_OPTIONS:
            i += 1 if eq else 2
            continue
        words.append(argv[i])
        i += 1
    return words


def global_options() -> argparse.ArgumentParser:
    """The global options as a parent parser, shared by the top-level parser and every command.
    SUPPRESS: a command that was not given an option leaves the top level's value alone."""
    parent = argparse.ArgumentParser(add_help=False)
    for flag, help_text in GLOBAL_OPTIONS.items():
        parent.add_argument(flag, default=argparse.SUPPRESS, help=help_text)
    return parent


def runs_dir(args: argparse.Namespace) -> Path:
    """The runs folder the command was given, else ./runs or $CNNLAB_RUNS."""
    value = getattr(args, "runs_dir", None)
    return Path(value) if value else default_runs_dir()
