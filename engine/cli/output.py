"""Where the CLI prints, and how a table reaches stdout.

On a terminal a table is drawn by rich and fitted to its width: the columns that hold names, run
ids and figures are `no_wrap` and stay whole, only free text (descriptions, help) wraps. When those
columns cannot fit the terminal, or when stdout is not a terminal (a pipe, a file), the table is
printed as plain rows instead: a header line, then one line per row, columns aligned with spaces
and never wrapped, so `cnnlab presets | grep adamw` finds `alexnet-cifar100-adamw` whole. A title
becomes a first line starting with "#".
"""

from __future__ import annotations

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

out = Console()
err = Console(stderr=True)

WRAP_MIN = 10  # the narrowest a free-text column may become before the table is printed as plain rows


def print_table(table: Table, console: Console | None = None) -> None:
    console = console or out
    if console.is_terminal and fits(table, console.width):
        console.print(table)
        return
    for line in plain_lines(table):
        console.print(line, highlight=False, soft_wrap=True)  # soft_wrap: neither wrapped nor cropped


def fits(table: Table, width: int) -> bool:
    """Whether every no_wrap column fits whole, with WRAP_MIN cells left for each wrapping one."""
    need = _extra_width(table)
    for column in table.columns:
        longest = max(cell.cell_len for cell in _cells(table, column))
        need += longest if column.no_wrap else min(longest, WRAP_MIN)
    return need <= width


def plain_lines(table: Table) -> list[Text]:
    """The table as lines: the title after "#", the header, one line per row (styles kept for a terminal)."""
    columns = [_cells(table, c) for c in table.columns]
    widths = [max(cell.cell_len for cell in cells) for cells in columns]
    lines = [Text(f"# {as_text(table.title).plain}")] if table.title else []
    for r in range(len(columns[0]) if columns else 0):
        line = Text()
        for i, (column, width) in enumerate(zip(table.columns, widths, strict=True)):
            cell, pad = columns[i][r], " " * (width - columns[i][r].cell_len)
            line.append_text(Text("  " if i else "") + (Text(pad) + cell if column.justify == "right" else cell + pad))
        line.rstrip()
        lines.append(line)
    return lines


def as_text(cell: RenderableType | None) -> Text:
    """A cell as one line of Text (a str cell is rich markup, as the table reads it)."""
    if cell is None:
        return Text("")
    text = cell if isinstance(cell, Text) else Text.from_markup(cell) if isinstance(cell, str) else Text(str(cell))
    return Text(" ").join(text.split("\n"))


def _cells(table: Table, column) -> list[Text]:
    header = as_text(column.header)
    header.stylize(table.header_style or "")
    return [header, *(as_text(c) for c in column.cells)]


def _extra_width(table: Table) -> int:
    """The cells between and around the columns that padding and borders take."""
    n = len(table.columns)
    top, right, bottom, left = table.padding
    between = max(left, right) if table.collapse_padding else left + right
    width = max(n - 1, 0) * between + ((left + right) if table.pad_edge and n else 0)
    if table.box is not None:
        width += max(n - 1, 0) + (2 if table.show_edge else 0)
    return width
