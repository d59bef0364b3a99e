"""The headless CLI: `cnnlab run | resume | sweep | show | presets | runs | keys | bench`.

    parser     the argparse parser: a command per family module
    options    the global options (before or after the command), listed once
    exits      exit codes and the one handler that turns errors into a message and a code
    output     the consoles, and tables drawn on a terminal or as plain rows when piped
    run        run and resume (Ctrl+C stops at the next batch), preset and --set resolution
    sweep      cnnlab sweep          show   cnnlab show          bench   cnnlab bench
    listing    presets, runs, keys   progress   the rich progress listener of a run

No domain module imports this package: the training library reads without its command line.
Torch is imported only by the commands that train or build a model, so listing stays instant.
Bad input exits 2 with a message that names the field; it never shows a traceback.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from engine.cli.exits import handle
    from engine.cli.output import err
    from engine.cli.parser import build_parser

    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return handle(args.func, args, err)
