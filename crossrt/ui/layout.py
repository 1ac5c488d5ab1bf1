"""How every table is laid out: cell formats, and tables that fit the console's width.

A table fits the console's width (the terminal's; 80 columns without one; $COLUMNS sets it)
without cutting a number or losing a column: a column whose value is the same in every row is
said once in the title, and what does not fit goes into a second part (and a third...), each
repeating the rows' labels, in the order of importance its columns declare (`Col.drop`). When
even the labels do not fit, the table is stacked, one value per line, and where that cannot be
drawn either (COLUMNS=5, COLUMNS=0) it is a plain list of `name: value` lines.

Cells are rich markup; a cell that is not valid markup (a name from a file that slipped past
esc()) is shown as plain text, and no cell passes a control character to the terminal.
"""

from __future__ import annotations

from typing import NamedTuple

from rich.console import Group
from rich.errors import MarkupError
from rich.table import Table
from rich.text import Text

from ..columns import Column
from ..text import printable
from .console import PLAIN_WIDTH, console


class Col(NamedTuple):
    name: str
    left: bool = False  # left-aligned (text)
    drop: int = 0  # the order of the columns in a split table: 0 in its first part, higher ones later
    fold: bool = False  # when every row has the same value, said once in the title instead
    wrap: bool = False  # text that may wrap; numbers never do
    key: bool = False  # labels a row (runtime, threads, batch): repeated in every part of a split table


# `crossrt show --wide` lays every table out as wide as it needs; --columns shows only those named.
VIEW = {"wide": False, "columns": None, "offered": set()}  # offered: every heading a table laid out had


def cell(markup: str) -> Text:
    """A cell's markup as rich Text; invalid markup as the plain text it is."""
    markup = printable(markup, keep_newlines=True)
    try:
        return Text.from_markup(markup, emoji=False)
    except MarkupError:
        return Text(markup)


def _need(cols: list[Col], rows: list[list[Text]], keep: list[int]) -> int:
    """Columns the table needs: whole cells (and header) where numbers must not wrap, the
    longest word where text may. Each column adds 3 for its border and padding."""

    def longest(cell: Text | str, whole: bool) -> int:
        lines = str(cell).splitlines() or [""]
        return max(len(ln) if whole else max(map(len, ln.split() or [""])) for ln in lines)

    return 1 + sum(
        3 + max([longest(cols[i].name, not cols[i].wrap)] + [longest(r[i], not cols[i].wrap) for r in rows])
        for i in keep
    )


def _name(col: Col) -> str:
    return col.name.replace("\n", " ").lower()


def _named(col: Col, names) -> bool:
    return _name(col) in names


def plain_list(title: Text, cols: list[Col], rows: list[list[Text]], caption: Text | None) -> Text:
    """The table as `name: value` lines, a blank line between rows: readable at any width."""
    out = Text()
    for line in [
        title,
        *[x for r in rows for x in [Text(""), *(Text(c.name.replace("\n", " ") + ": ") + v for c, v in zip(cols, r))]],
        *([Text(""), caption] if caption else []),
    ]:
        out.append_text(line)
        out.append("\n")
    out.rstrip()
    return out


WIDE = 10_000  # `show --wide`: columns a table may take, however many it needs


def fitted(title: str, cols: list[Col], rows: list[list[str]], styles=None, ends=None, caption=None):
    """A table of rows (lists of cells, markup allowed) that fits the console's width, no number cut
    and no column lost: a column whose value is the same in every row is said once in the title;
    the rest goes, in the order of the columns' `drop`, into as many parts as the width needs, each
    repeating the label columns; only when the labels alone do not fit is it stacked, one value per line."""
    title, caption, rows = cell(title), caption and cell(caption), [[cell(c) for c in r] for r in rows]
    width = WIDE if VIEW["wide"] else console.width
    keep, folded = list(range(len(cols))), []
    if VIEW["columns"]:
        VIEW["offered"].update(_name(c) for c in cols)
        keep = [i for i, c in enumerate(cols) if c.key or _named(c, VIEW["columns"])]
    keep = [i for i in keep if cols[i].key or any(r[i].plain not in ("", "—") for r in rows)]  # nothing to show
    if rows:
        for i in list(keep):
            if cols[i].fold and len({r[i].markup for r in rows}) == 1:
                keep.remove(i)
                if rows[0][i].plain not in ("", "—"):  # an empty column says nothing, in the title or in the table
                    folded.append(Text(f"{cols[i].name} ") + rows[0][i])
    if folded:
        title += Text(" (") + Text(", ").join(folded) + Text(")")
    labels = [i for i in keep if cols[i].key]
    parts: list[list[int]] = [[]]
    for i in sorted((i for i in keep if not cols[i].key), key=lambda i: (cols[i].drop, i)):
        if parts[-1] and _need(cols, rows, labels + parts[-1] + [i]) > width:
            parts.append([])
        parts[-1].append(i)
    if _need(cols, rows, labels + parts[0][:1]) > width:
        return plain_list(title, cols, rows, caption) if width < PLAIN_WIDTH else _stacked(title, cols, rows, caption)
    # The title and the notes under the table are lines of their own, wrapped at the terminal's
    # width: as a rich Table's title and caption they would wrap at the width of the table's part.
    tables: list = [title]
    for n, part in enumerate(parts):
        t = Table(title="(continued)" if n else None, title_justify="left")
        shown = sorted(labels + part)
        for i in shown:
            c = cols[i]
            t.add_column(c.name, justify="left" if c.left else "right", no_wrap=not c.wrap, overflow="fold")
        for k, r in enumerate(rows):
            t.add_row(*(r[i] for i in shown), style=styles[k] if styles else None, end_section=bool(ends and ends[k]))
        tables.append(t)
    return Group(*tables, *([caption] if caption else []))


def _stacked(title: Text, cols: list[Col], rows: list[list[Text]], caption) -> Group:
    """One value per line, the title and notes around it wrapped at the terminal's width, as fitted's."""
    stacked = Table(show_header=False)
    stacked.add_column("field", overflow="fold")
    stacked.add_column("value", overflow="fold")
    for r in rows:
        for c, value in zip(cols, r):
            stacked.add_row(c.name, value)
        stacked.rows[-1].end_section = True
    return Group(title, stacked, *([caption] if caption else []))


def as_col(c: Column, unit: str = "", result=None) -> Col:
    """A declared column (crossrt.columns) as the layout lays it out (in result's table, for a
    column whose place depends on it)."""
    drop = c.drop(result) if callable(c.drop) else c.drop
    return Col(c.title(unit), c.left, drop, c.fold, c.wrap, c.key)
