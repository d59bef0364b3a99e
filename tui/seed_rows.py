"""The runs table's rows with seed groups folded: the runs of one experiment under several seeds
(engine.insight.seed_groups) are one row, with their number and the mean of their best validation and test
accuracy (the ± spread is in the line under the table); enter unfolds it into its runs.

Pure (rich Text, no Textual): the runs screen asks for its rows here and keeps its own keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text

from engine.insight.formatting import pct
from engine.insight.seed_groups import SeedGroup, seed_groups
from engine.runfolder.table import RunInfo
from tui.run_view import started_text

GROUP = "group:"  # the row key of a group: GROUP + its key


class SeedRows:
    def __init__(self) -> None:
        self.groups: dict[str, SeedGroup] = {}  # by row key
        self.expanded: set[str] = set()  # row keys of the groups shown with their runs

    def group(self, row_key: str | None) -> SeedGroup | None:
        return self.groups.get(row_key or "")

    def toggle(self, row_key: str) -> None:
        self.expanded ^= {row_key}

    def table_rows(
        self, infos: list[RunInfo], cells: Callable[[RunInfo], list[Any]], selected: set[str]
    ) -> list[tuple[str, list[Any]]]:
        """(row key, cells) in the table's order: a group where its newest run would be."""
        found = seed_groups(infos)
        self.groups = {GROUP + g.key: g for g in found}
        self.expanded &= set(self.groups)
        member = {str(r.path): GROUP + g.key for g in found for r in g.runs}
        rows, placed = [], set()
        for info in infos:
            key = member.get(str(info.path))
            if key is None:
                rows.append((str(info.path), cells(info)))
            elif key not in placed:
                placed.add(key)
                g = self.groups[key]
                rows.append((key, self.cells(g, key in self.expanded, selected)))
                if key in self.expanded:
                    for run in g.runs:
                        row = cells(run)
                        row[0] = Text(" └") + row[0]
                        rows.append((str(run.path), row))
        return rows

    def cells(self, g: SeedGroup, expanded: bool, selected: set[str]) -> list[Any]:
        every = all(str(r.path) in selected for r in g.runs)
        mark = "● " if every else "  "
        first = g.runs[-1]
        done = min(r.epochs_done for r in g.runs)
        return [
            Text(f"{mark}{'▾' if expanded else '▸'} {g.n} seeds", style="bold"),
            Text(first.preset or "–"),
            Text("group", style="cyan"),
            f"{done}/{first.epochs}",
            pct(g.best_val.mean, space=False),
            pct(g.test.mean, space=False),
            Text(started_text(g.runs[0].started)),
        ]

    def detail(self, g: SeedGroup, expanded: bool) -> Text:
        text = Text(g.text())
        what = "enter folds it" if expanded else "enter shows its runs"
        text.append(f"\n{what} · space selects them · c compares them (mean, min-max band)", style="dim")
        return text
