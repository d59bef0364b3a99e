"""The `cnnlab` command: no command opens the console; a command goes to the headless CLI.

Global options alone (`cnnlab --runs-dir DIR`) open the console on that folder; with a command
(`cnnlab --runs-dir DIR presets`) they go to the CLI with it. `cnnlab bench --ui` measures the
console itself, so it is the one command answered here.
"""

import sys


def main() -> int:
    from engine.cli.options import command_words

    args = sys.argv[1:]
    words = command_words(args)
    if words[:1] == ["bench"] and "--ui" in words:
        from tui.bench import main as ui_bench

        return ui_bench(words[1:])
    if words:
        from engine.cli import main as cli_main

        return cli_main(args)
    from tui.app import run_app

    return run_app(args)


if __name__ == "__main__":
    sys.exit(main())
