"""`cnnlab presets`, `cnnlab runs`, `cnnlab keys`: what there is to run, what ran, what `--set` takes.

No torch: these list from TOML files, run folders and the config's schema, so they answer at once.
Names, run ids and keys never wrap (engine.cli.output); piped, each is one plain row per line.
"""

from __future__ import annotations

import argparse

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from engine.cli.exits import EXIT_OK, UsageError
from engine.cli.options import runs_dir
from engine.cli.output import err, out, print_table
from engine.insight.formatting import cli_pct, state_markup
from engine.runfolder.folder import user_presets_dir
from engine.runfolder.table import list_runs


def add_cli(sub, common: argparse.ArgumentParser) -> None:
    sub.add_parser("presets", parents=[common], help="list the presets (built-in and yours)").set_defaults(
        func=cmd_presets
    )
    sub.add_parser("runs", parents=[common], help="list the runs").set_defaults(func=cmd_runs)
    k = sub.add_parser("keys", parents=[common], help="list every config key, its range or choices, and its help")
    k.set_defaults(func=cmd_keys)


def cmd_presets(args) -> int:
    from engine.experiment.presets import load_presets

    presets, problems = load_presets(user_presets_dir(runs_dir(args)))
    table = Table(title="presets", box=None, pad_edge=False)
    for col in ("name", "report", "model", "dataset"):
        table.add_column(col, no_wrap=True)
    for col in ("report's result", "description"):
        table.add_column(col, overflow="fold")
    for p in presets:
        e = p.experiment
        table.add_row(
            p.name + (" (yours)" if p.user else ""),
            p.report.split("_")[0] if p.report else "-",
            e.model.arch,
            e.data.dataset,
            escape(reference_text(p.reference)),
            escape(p.description),
        )
    print_table(table)
    for prob in problems:
        err.print(f"[red]{escape(str(prob.source))}[/red]: {escape(prob.message)}", highlight=False, soft_wrap=True)
    return EXIT_OK


def reference_text(reference) -> str:
    """A report's figures (an engine.experiment.presets.Reference) in a few words: "test 54.60%, val 53.80% @35 ep"."""
    if not reference:
        return "-"
    ref, epochs = reference.figures(), reference.epochs
    bits = [f"{k.replace('_acc', '')} {cli_pct(ref[k])}" for k in ("test_acc", "val_acc") if ref.get(k) is not None]
    if not bits and ref.get("train_acc") is not None:
        bits = [f"train {cli_pct(ref['train_acc'])}"]
    if not bits:
        return "-"
    return ", ".join(bits) + (f" @{epochs} ep" if epochs else "")


def cmd_runs(args) -> int:
    from engine.experiment.presets import find_preset

    runs = runs_dir(args)
    if runs.exists() and not runs.is_dir():
        raise UsageError(f"the runs folder {runs} is a file, not a folder (give another with --runs-dir)")
    found = list_runs(runs)
    if not found:
        out.print(f"no runs in {runs}")
        return EXIT_OK
    user_dir = user_presets_dir(runs)
    presets = {name: find_preset(name, user_dir) for name in {r.preset for r in found}}
    table = Table(box=None, pad_edge=False)
    for col in ("id", "preset", "status", "epochs", "best val", "test"):
        table.add_column(col, no_wrap=True)
    table.add_column("report", overflow="fold")
    for r in found:
        table.add_row(
            escape(r.id),
            escape(r.preset) or "-",
            state_markup(r.state),
            f"{r.epochs_done}/{r.epochs}",
            cli_pct(r.best_val_acc),
            cli_pct(r.test_acc),
            reference_text(presets[r.preset].reference if presets[r.preset] else None),
        )
    print_table(table)
    for r in found:  # what is wrong with each damaged run, after the table that lists it
        if r.problems:
            err.print(f"[red]{r.id}[/red]: damaged: {escape('; '.join(r.problems))}", highlight=False, soft_wrap=True)
    return EXIT_OK


def cmd_keys(args) -> int:
    """Every config key with its type, range or choices and help: what `--set` accepts."""
    from engine.experiment.config import Experiment
    from engine.experiment.overrides import all_keys

    table = Table(box=None, pad_edge=False)
    table.add_column("key", no_wrap=True)
    for col in ("default", "accepts", "help"):
        table.add_column(col, overflow="fold")
    defaults = Experiment().model_dump(mode="json")
    for key, info in all_keys():
        section, name = key.split(".")
        # plain Text, not markup: a help that names an extra (`cnnlab[tensorboard]`) prints it whole
        table.add_row(key, Text(repr(defaults[section][name])), Text(accepts(info)), Text(info.description or ""))
    print_table(table)
    return EXIT_OK


def accepts(info) -> str:
    """What a field takes, read from its schema (the same facts the console's form shows)."""
    from engine.experiment.schema import accepts as read_accepts

    return read_accepts(info)
