"""How every table is laid out: cell formats, and tables that fit the console's width.

A table fits the console's width (80 columns when piped) without cutting a number: a column
whose value is the same in every row is said once in the title, less important columns are
dropped, and a table that still does not fit is stacked, one value per line.
"""

from __future__ import annotations

from typing import NamedTuple

from rich.table import Table
from rich.text import Text

from .console import console


def secs(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:,.2f} s"


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def num(x: float | None, digits: int = 0) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def peak_pct(p: float | None) -> str:
    """% of peak; over 100% (a peak measured on a busier moment) is never shown as if normal."""
    return "—" if p is None else f"{p:.0f}%" if p <= 100 else f"[yellow]{p:.0f}%![/]"


def cold(seconds: float) -> str:
    """A cold cost: milliseconds, or seconds once it is long (a compile)."""
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def stable(ok: bool | None) -> str:
    return "—" if ok is None else "yes" if ok else "[yellow]no[/]"


def ci(ci: list[float] | None) -> str:
    return "—" if not ci else f"{ci[0]:,.0f}–{ci[1]:,.0f}"


class Col(NamedTuple):
    name: str
    left: bool = False
    drop: int = 0  # 0: always shown; else dropped when the table is too wide, highest first
    fold: bool = False  # when every row has the same value, said once in the title instead
    wrap: bool = False  # text that may wrap; numbers never do


def _need(cols: list[Col], rows: list[list[str]], keep: list[int]) -> int:
    """Columns the table needs: whole cells (and header) where numbers must not wrap, the
    longest word where text may. Each column adds 3 for its border and padding."""
    def longest(cell: str, whole: bool) -> int:
        lines = Text.from_markup(cell).plain.splitlines() or [""]
        return max(len(ln) if whole else max(map(len, ln.split() or [""])) for ln in lines)

    return 1 + sum(3 + max([longest(cols[i].name, not cols[i].wrap)] +
                           [longest(r[i], not cols[i].wrap) for r in rows]) for i in keep)


def fitted(title: str, cols: list[Col], rows: list[list[str]], styles=None, ends=None, caption=None) -> Table:
    """A table of rows (lists of cells, markup allowed) that fits the console's width."""
    width, keep, folded = console.width, list(range(len(cols))), []
    if len(rows) > 1:
        for i, c in enumerate(cols):
            if c.fold and len({r[i] for r in rows}) == 1:
                keep.remove(i)
                folded.append(f"{c.name} {rows[0][i]}")
    title += f" ({', '.join(folded)})" if folded else ""
    drops, dropped = sorted((i for i in keep if cols[i].drop), key=lambda i: -cols[i].drop), []
    while _need(cols, rows, keep) > width and drops:
        dropped.append(drops.pop(0))
        keep.remove(dropped[-1])
    for i in reversed(dropped):  # the most important of the dropped columns first, if it fits now
        if _need(cols, rows, sorted(keep + [i])) <= width:
            keep = sorted(keep + [i])
    if _need(cols, rows, keep) <= width:
        t = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
        for i in keep:
            c = cols[i]
            t.add_column(c.name, justify="left" if c.left else "right", no_wrap=not c.wrap, overflow="fold")
        for n, r in enumerate(rows):
            t.add_row(*(r[i] for i in keep), style=styles[n] if styles else None, end_section=bool(ends and ends[n]))
        return t
    stacked = Table(title=title, title_justify="left", show_header=False, caption=caption, caption_justify="left")
    stacked.add_column("field", overflow="fold")
    stacked.add_column("value", overflow="fold")
    for r in rows:
        for i, c in enumerate(cols):
            stacked.add_row(c.name, r[i])
        stacked.rows[-1].end_section = True
    return stacked
