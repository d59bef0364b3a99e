"""The `cnnlab` parser: a command per family module, each with the global options (engine.cli.options)."""

from __future__ import annotations

import argparse

from engine.cli.options import global_options


def build_parser() -> argparse.ArgumentParser:
    from engine.cli import bench, control, inference, insight, listing, run, show, sweep

    common = global_options()
    p = argparse.ArgumentParser(
        prog="cnnlab",
        parents=[common],
        description="CNN image-classification experiments: the console (no command) and headless commands.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for family in (run, control, listing, sweep, show, bench, insight, inference):
        family.add_cli(sub, common)
    return p
