"""The `cnnlab` command: no arguments opens the console; a subcommand goes to the headless CLI.

`cnnlab bench --ui` measures the console itself, so it is the one subcommand answered here.
"""

import sys


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["bench"] and "--ui" in args:
        from tui.bench import main as ui_bench

        return ui_bench(args[1:])
    if args and args[0] not in ("--runs-dir",) and not args[0].startswith("--runs-dir="):
        from engine.cli import main as cli_main

        return cli_main(args)
    from tui.app import run_app

    return run_app(args)


if __name__ == "__main__":
    sys.exit(main())
