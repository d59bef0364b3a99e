"""The `cnnlab` command: no arguments opens the console; a subcommand goes to the headless CLI."""

import sys


def main() -> int:
    args = sys.argv[1:]
    if args and args[0] not in ("--runs-dir",):
        from engine.cli import main as cli_main

        return cli_main(args)
    from tui.app import run_app

    return run_app(args)


if __name__ == "__main__":
    sys.exit(main())
