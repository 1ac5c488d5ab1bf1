"""`report` and `compare` on the console: the merged rows of crossrt.compare, a table per machine and model.
Measurement never imports this module.
"""

from __future__ import annotations

from rich.table import Table

from ..columns import REPORT, Column, num, report_columns
from .console import esc
from .layout import Col, as_col, fitted


def report_cell(c: Column, row: dict) -> str:
    """A report row's value as its column shows it; a kind stopped before the end is marked."""
    if c.name == "kind" and not row["complete"]:
        return f"[yellow]{row['kind']}*[/]"
    return c.shown(row[c.name])


def report_tables(rows: list[dict]) -> list:
    """Merged results: a table per machine, model and kind (training, or bench-infer); repeated runs of
    one configuration as one row (the median, its spread, n); runs stopped early are marked."""
    tables = []
    models = {}
    cols = sorted((c for c in report_columns() if c.places & REPORT), key=lambda c: c.wrap)  # wrapping text last
    for r in rows:  # a LeNet5 and its ONNX export are one model (one key), named both ways
        models.setdefault((r["machine"], r["model_key"]), []).append(r["model"])
    for machine, key, kind in dict.fromkeys((r["machine"], r["model_key"], r["kind"]) for r in rows):
        mine = [r for r in rows if (r["machine"], r["model_key"], r["kind"]) == (machine, key, kind)]
        model = " = ".join(dict.fromkeys(models[machine, key]))
        cells = [[report_cell(c, r) for c in cols] for r in mine]
        caption = "* stopped before the end (complete: false)" if not all(r["complete"] for r in mine) else None
        tables.append(fitted(esc(f"{machine}: {model}"), [as_col(c) for c in cols], cells, caption=caption))
    return tables


def compare_table(rows: list[dict], a: str, b: str, noise: float) -> Table:
    kinds = {r["what"].split(", ")[0] for r in rows}  # "validation", "training", "LoadGen Offline"
    common = f"{next(iter(kinds))}, " if len(kinds) == 1 and all(", " in r["what"] for r in rows) else ""
    cells = [
        [
            esc(r["what"].removeprefix(common)),
            num(r["a"]),
            num(r["b"]),
            f"{r['ratio']:.3f}x",
            "—" if r["ci95"] is None else f"{r['ci95'][0]:.3f}–{r['ci95'][1]:.3f}",
            {"faster": "[green]faster[/]", "slower": "[red]slower[/]"}.get(r["verdict"], r["verdict"]),
        ]
        for r in rows
    ]
    cols = [
        Col("configuration", left=True, wrap=True, key=True),
        Col("A /s"),
        Col("B /s"),
        Col("B / A"),
        Col("95% CI", drop=1),
        Col("verdict", left=True),
    ]
    what = f"{common.rstrip(', ')} " if common else ""
    return fitted(
        esc(
            f"B against A, {what}rows that match, images or samples per second (A: {a}; B: {b}; "
            f"noise band ±{100 * noise:.0f}%)"
        ),
        cols,
        cells,
    )
