"""The suite's tables: the reference's table on this machine, each mode's verdicts, the sweep's scaling.
Measurement never imports this module.
"""

from __future__ import annotations

from rich.table import Table

from ..columns import hardware_of, num, pct, secs
from ..compare import cost_rows
from ..results import SuiteResult
from ..runtimes.registry import RUNTIMES
from .bench import verdict_lines
from .console import console, esc
from .layout import Col, fitted


def suite_table(result: SuiteResult, ref: dict) -> Table:
    """The reference's table for this machine, with the reference's published rows beside it.

    With fewer than the reference's 100 epochs, every row shows per-epoch times, so that this
    machine's figures and the reference's are compared like for like.
    """
    epochs = result.config["epochs"]
    per_epoch = epochs != ref["epochs"]
    unit, div = ("/ epoch", epochs) if per_epoch else ("", 1)
    rows, ends = [], []
    for m in result.modes:
        tr, s = m.train, m.train.summary()
        rows.append(
            [
                esc(hardware_of(tr.environment, tr.device)),
                esc(m.mode),
                "PyTorch (crossrt train)",
                secs(s["train_s"] / div),
                secs(s["valid_s"] / div),
                secs(s["total_s"] / div),
                pct(s["final_accuracy"]),
                f"{num(s['images_per_s'])} train",
            ]
        )
        runs = m.bench.runs if m.bench else []
        for run, (_, train_s, valid_s) in zip(runs, cost_rows(tr, runs)[1:]):
            io = "" if run.io == "host" else f" ({run.io})"
            name = (RUNTIMES[run.runtime].label if run.runtime in RUNTIMES else run.runtime) + (
                f" {run.precision}" if run.precision == "bf16" else ""
            )
            rows.append(
                [
                    "",
                    "",
                    esc(f"validation: {name}{io}"),
                    secs(train_s / div),
                    secs(valid_s / div),
                    secs((train_s + valid_s) / div),
                    pct(run.accuracy),
                    f"{num(run.samples_per_s)} valid",
                ]
            )
        ends += [False] * (len(runs) + 1)
        ends[-1] = True
    n = ref["epochs"] if per_epoch else 1
    for r in ref["rows"]:
        machine = ref["machine"]["gpu" if r["mode"].startswith("gpu") else "cpu"] + " (reference, MNIST)"
        rows.append(
            [
                f"[dim]{machine}[/]",
                f"[dim]{r['mode']}[/]",
                f"[dim]{r['runtime']} (reference)[/]",
                secs(r["train_s"] and r["train_s"] / n),
                secs(r["valid_s"] and r["valid_s"] / n),
                secs(r["total_s"] / n),
                pct(r["final_accuracy"]),
                f"{num(60000 * ref['epochs'] / r['train_s'])} train" if r["train_s"] else "—",
            ]
        )
        ends.append(False)
    cols = [
        Col("machine", left=True, drop=9, wrap=True),
        Col("mode", left=True, key=True),
        Col("runtime", left=True, wrap=True, key=True),
        Col(f"training\n{unit}"),
        Col(f"validation\n{unit}"),
        Col(f"total\n{unit}", drop=3),
        Col("final\naccuracy", drop=2),
        Col("images/s", drop=4),
    ]
    title = f"LeNet5 on {esc(result.dataset)}: {epochs} epoch(s) per mode on this machine"
    caption = "\n".join(
        [f"(reference): the article's figures, MNIST on {ref['machine']['cpu']} / {ref['machine']['gpu']}"]
        + [
            esc(f"not run in the {m.mode} mode: {x.runtime}: {x.reason}")
            for m in result.modes
            if m.bench
            for x in m.bench.skipped
        ]
        + [
            f"[red]failed[/] in the {esc(m.mode)} mode: {esc(f.line)}"
            for m in result.modes
            if m.bench
            for f in m.bench.failed
        ]
    )
    return fitted(title + (" (times per epoch)" if per_epoch else ""), cols, rows, ends=ends, caption=caption)


def suite_tables(result: SuiteResult) -> None:
    """Every table of a suite: the reference's table, each mode's verdicts, the sweep's scaling."""
    from ..suite import rank_scaling, reference, scaling

    console.print(suite_table(result, reference()))
    for m in (m for m in result.modes if m.bench):
        verdict_lines(m.bench, f" ({m.mode})")
    for rows, table in ((scaling(result), scaling_table), (rank_scaling(result), ranks_table)):
        if rows:
            console.print(table(rows))


def scaling_table(rows: list[dict]) -> Table:
    cells = [
        [
            esc(r["phase"]),
            str(r["batch_size"]),
            str(r["threads"]),
            num(r["images_per_s"]),
            "—" if r["speedup"] is None else f"{r['speedup']:.2f}x",
            "—" if r["efficiency"] is None else f"{100 * r['efficiency']:.0f}%",
        ]
        for r in rows
    ]
    cols = [
        Col("phase", left=True, wrap=True, key=True),
        Col("batch", key=True),
        Col("threads", key=True),
        Col("images/s"),
        Col("speed-up"),
        Col("efficiency"),
    ]
    return fitted("Scaling against 1 thread (sweep)", cols, cells)


def ranks_table(rows: list[dict]) -> Table:
    cells = [
        [
            str(r["batch_size"]),
            f"{r['ranks']} x {r['threads']}",
            num(r["images_per_s"]),
            num(r["one_process"]),
            "—" if r["ratio"] is None else f"{r['ratio']:.2f}x",
            pct(r["final_accuracy"]),
        ]
        for r in rows
    ]
    cols = [
        Col("batch", key=True),
        Col("ranks x threads", key=True),
        Col("images/s"),
        Col("one process,\nsame cores"),
        Col("ranks /\none process"),
        Col("final\naccuracy"),
    ]
    return fitted("Data-parallel ranks against one process on the same total cores (sweep)", cols, cells)
