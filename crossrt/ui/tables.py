"""Result tables for the console (rich), each fitted to the console's width (crossrt.ui.layout).
Measurement never imports this module.
"""

from __future__ import annotations

from rich.table import Table

from .. import columns
from ..columns import BENCH, REPORT, Column, ci, hardware_of, num, pct, peak_pct, report_columns, secs
from ..compare import cost_rows, train_setup
from ..results import BenchResult, CudaSplit, InferRun, Peak, SuiteResult, TrainResult
from ..runtimes.registry import RUNTIMES
from ..system import ago
from ..verdicts import computes, verdicts
from .console import console, esc, note
from .layout import Col, fitted


def train_summary(r: TrainResult) -> Table:
    s, n = r.summary(), len(r.epochs)
    per = (lambda x: secs(x / n)) if n else (lambda x: "—")
    steadiness = "stable" if s["train_stable"] else f"[yellow]unstable: {esc(s['train_unstable_cause'])}[/]"
    rows = [
        ["training time", secs(s["train_s"]), f"{per(s['train_s'])} per epoch"],
        [
            "validation time",
            secs(s["valid_s"]),
            f"{per(s['valid_s'])} per pass ({r.valid_images:,} images, batch {r.valid_batch_size})",
        ],
        [
            "total",
            secs(s["total_s"]),
            "training + validation, as the reference adds them"
            + (f" + setup; without the setup {secs(s['total_without_setup_s'])}" if r.setup_s else ""),
        ],
        *(
            [
                [
                    "setup (CUDA graphs)",
                    secs(r.setup_s),
                    "warm-up (cuDNN's algorithm search "
                    + ("on" if r.tuning.get("cudnn_benchmark") else "off")
                    + ") and capture; before it, not counted: "
                    + ", ".join(
                        esc(f"{k.removesuffix('_s').replace('_', ' ')} {v:.2f} s")
                        for k, v in r.setup_parts.items()
                        if k != "warmup_and_capture_s"
                    ),
                ]
            ]
            if r.setup_s
            else []
        ),
        ["first epoch", secs(s["first_epoch_s"]), "train + valid; includes warm-up cost"],
        [
            "steady epoch (training)",
            secs(s["steady_epoch_train_s"]),
            f"mean of epochs 2..{n}; {steadiness}"
            if n > 1
            else "epoch 1 only, warm-up included: train 2 epochs or more for a steady state",
        ],
        [
            "training throughput",
            f"{num(s['steady_images_per_s'])} img/s",
            f"{'steady epochs' if n > 1 else 'epoch 1'}: 95% CI {ci(s['train_ci95'])}; {num(s['train_gflops'], 1)} "
            f"GFLOP/s (3 x {r.flops_per_image / 1e6:.2f} MFLOP/img); every epoch, warm-up too: "
            f"{num(s['images_per_s'])} img/s",
        ],
    ]
    if s["percent_of_peak"] is not None:
        rows.append([f"% of {esc(r.math)} peak", peak_pct(s["percent_of_peak"]), peak_note(r.peak)])
    if s["train_cpu_s_per_1k"] is not None:
        rows.append(
            [
                "CPU cost",
                f"{s['train_cpu_s_per_1k']:.2f} s / 1k img",
                "process CPU seconds per 1,000 training images, all threads" + (" of all ranks" * (r.world_size > 1)),
            ]
        )
    if r.peak_rss_mb is not None:
        rows.append(
            [
                "peak memory",
                f"{r.peak_rss_mb:,.0f} MiB",
                "resident set of the process" + (" of rank 0 (each rank has its own)" if r.world_size > 1 else ""),
            ]
        )
    rows += [
        ["final accuracy", pct(s["final_accuracy"]), f"epoch {n}"],
        ["best accuracy", pct(s["best_accuracy"]), f"epoch {s['best_epoch']}"],
        [
            f"reached {pct(r.target_accuracy)}",
            "not reached" if s["target_epoch"] is None else f"epoch {s['target_epoch']}",
            f"in {n} epoch(s)" if s["target_epoch"] is None else f"after {secs(s['target_s'])} (train + valid)",
        ],
    ]
    if r.onnx is not None:
        o = r.onnx
        ok = "green" if o.top1_agreement == 1.0 and o.max_abs_diff < 1e-3 else "red"
        rows += [
            ["ONNX export", f"opset {o.opset}", f"{esc(o.path)}, {secs(o.export_s)}"],
            [
                "ONNX Runtime parity",
                f"[{ok}]{pct(o.top1_agreement)} top-1[/]",
                f"max |logit diff| {o.max_abs_diff:.2e} on {o.images:,} images",
            ],
        ]
    ranks = f"{r.world_size} ranks ({r.backend}) x " if r.world_size > 1 else ""
    title = esc(
        f"LeNet5 ({r.arch}) on {r.dataset}: {n} epoch(s), {r.device}, {ranks}{r.threads} thread(s), {r.precision}"
    )
    if not r.complete:
        title += " [yellow](stopped early)[/]"
    return fitted(title, [Col("measure", left=True, key=True), Col("value"), Col("note", left=True, wrap=True)], rows)


def peak_note(p: Peak) -> str:
    """What a "% of peak" divides by: the figure, how it was measured, its spread and age, and
    whether it is the machine's cached peak or one measured for this run only (and why)."""
    how = (
        f"best of {len(p.tries)}, spread {100 * p.spread:.0f}%, measured {ago(p.measured)}"
        if p.tries is not None
        else ""
    )
    where = f"{p.threads or 'all'} cpu thread(s)" if p.device == "cpu" else "the GPU"
    text = esc(
        f"of {p.peak:,.0f} GFLOP/s, the fastest {p.math or ''} kernel measured on {where}"
        + (f" ({how})" if how else "")
    )
    if p.cached is False:
        text += f" [yellow]for this run only, not cached: {esc(p.why or '')}[/]"
    return text


def as_col(c: Column, unit: str = "") -> Col:
    """A declared column (crossrt.columns) as the layout lays it out."""
    return Col(c.title(unit), c.left, c.drop, c.fold, c.wrap, c.key)


def verdict_lines(r: BenchResult, where: str = "") -> None:
    """The answer under the table, in words: per setting, the runtime to pick and how sure."""
    for v in r.verdicts or verdicts(r.runs):  # a file from before schema 11 has none saved
        sure = "green" if v.sure and not v.unstable else "yellow"
        note(f"[bold {sure}]verdict[/]{esc(where)}: {esc(v.text)}")


def model_title(r: BenchResult) -> str:
    """What ran: the model (its size and parameters for any model), what fed it, its FLOPs per sample."""
    info, flops = r.model_info, r.flops_per_sample
    per = "image" if r.dataset else "sample"
    cost = (
        "FLOPs not counted"
        if flops is None
        else f"{flops / 1e9:,.2f} GFLOP/{per}"
        if flops >= 1e9
        else f"{flops / 1e6:,.2f} MFLOP/{per}"
    )
    if r.dataset:
        return f"Validation of {r.model} on {r.dataset} ({r.runs[0].samples:,} test images), {cost}"
    params, size = info.get("parameters", 0), info.get("bytes", 0)
    size = (f"{params / 1e6:,.2f}M parameters" if params >= 1e6 else f"{params:,} parameters") + (
        f", {size / 2**20:,.1f} MiB" if size >= 2**20 else f", {size:,} bytes"
    )
    return f"{info.get('name', r.model)} ({size}): {'; '.join(info.get('inputs', []))}; {cost}"


def bench_table(r: BenchResult) -> Table:
    """One row per configuration, a cell per column of crossrt.columns.BENCH_COLUMNS; the fastest in
    bold green, disagreeing outputs or accuracies in red."""
    fastest = max(filter(computes, r.runs), key=lambda x: x.samples_per_s, default=None)  # null is no contender
    labelled, torch_rows = r.dataset is not None, any(x.runtime == "pytorch" for x in r.runs)
    cols = [c for c in columns.BENCH_COLUMNS if c.places & BENCH and (c.when is None or c.when(r))]
    rows = [[bench_cell(c, x, r) for c in cols] for x in r.runs]
    title = esc(model_title(r) if r.runs else f"{r.model}: no runs")
    if not r.complete:
        title += " [yellow](stopped early)[/]"
    caption = (
        "\n".join(
            [esc(s.line) for s in r.skipped]
            + [f"[red]failed:[/] {esc(f.line)}" for f in r.failed]
            + [f"% peak: {peak_note(p)}" for p in r.peaks]
            + ([esc(f"runtime options: {', '.join(given)}")] if (given := r.config.get("runtime_options")) else [])
            + (
                ["[yellow]?[/]: the PyTorch row it divides by is unstable"]
                if torch_rows and any(x.runtime == "pytorch" and x.stable is False for x in r.runs)
                else []
            )
        )
        or None
    )
    return fitted(
        title,
        [as_col(c, "img" if labelled else "samples") for c in cols],
        rows,
        styles=["bold green" if x is fastest else None for x in r.runs],
        caption=caption,
    )


def bench_cell(c: Column, run: InferRun, r: BenchResult) -> str:
    text = c.shown(c.bench(run, r))
    return f"[bold red]{text}[/]" if c.red and run.parity_ok is False else text


def outputs_table(r: BenchResult) -> Table | None:
    """A model with several outputs: each one of each row against ONNX Runtime CPU fp32."""
    if not any(len(x.outputs or []) > 1 for x in r.runs):
        return None
    rows = [
        [
            x.label,
            o.name,
            "—" if o.max_abs is None else f"{o.max_abs:.2e}",
            o.note or ("—" if o.max_rel is None else f"{o.max_rel:.2e}"),
            "—" if o.top1 is None else pct(o.top1),
            "yes" if o.ok else "[bold red]no[/]",
        ]
        for x in r.runs
        for o in x.outputs or []
    ]
    cols = [
        Col("configuration", left=True, wrap=True, key=True),
        Col("output", left=True),
        Col("max |diff|"),
        Col("max |diff| /\nmax |ref|"),
        Col("top-1\nagrees", drop=1),
        Col("within\ntolerance"),
    ]
    return fitted("Every output against ONNX Runtime CPU fp32 on the same inputs", cols, rows)


def bottleneck(split: CudaSplit) -> tuple[str, str]:
    """trtexec's reading of a batch's split: launch-bound (queueing the work takes at least 0.8x
    the compute), transfer-bound (the copy in takes at least the compute) or compute-bound;
    and what would help."""
    if split.enqueue is not None and split.enqueue >= 0.8 * split.compute:
        return "launch-bound", "CUDA graphs (the cuda-graph rows) or larger batches"
    if split.h2d >= split.compute:
        return "transfer-bound", "keep inputs on the GPU (device-resident), or larger batches"
    return "compute-bound", "faster kernels (TF32, bf16) or a larger GPU"


def split_table(r: BenchResult) -> Table | None:
    """CUDA end-to-end rows: where a batch's time goes, and trtexec's verdict on what bounds it."""
    runs = [x for x in r.runs if x.split_ms]
    if not runs:
        return None
    verdicts = [bottleneck(x.split_ms) for x in runs]
    rows = [
        [
            esc(x.runtime),
            str(x.batch_size),
            *("—" if ms is None else f"{ms:.3f}" for ms in (s.h2d, s.enqueue, s.compute, s.d2h)),
            f"{x.latency_ms.mean:.3f}",
            verdict,
        ]
        for x, s, (verdict, _) in zip(runs, (x.split_ms for x in runs), verdicts)
    ]
    cols = [
        Col("runtime", left=True, key=True),
        Col("batch", fold=True, key=True),
        Col("host-to-\ndevice"),
        Col("enqueue"),
        Col("compute"),
        Col("device-to-\nhost"),
        Col("end-to-end\nmean"),
        Col("verdict", left=True),
    ]
    advice = sorted({f"{verdict}: {helps}" for verdict, helps in verdicts})
    return fitted("CUDA per-batch split (ms)", cols, rows, caption=esc("; ".join(advice)))


def cost_table(r: BenchResult, train: TrainResult) -> Table:
    """The reference's split: training time, validation time, total, with validation priced per runtime."""
    rows = [[esc(label), secs(t), secs(v), secs(t + v), pct(v / (t + v))] for label, t, v in cost_rows(train, r.runs)]
    cols = [
        Col("validation by", left=True, wrap=True, key=True),
        Col("training"),
        Col("validation"),
        Col("total", drop=2),
        Col("validation\nshare", drop=1),
    ]
    return fitted(
        esc(
            f"Training vs validation cost over {len(train.epochs)} epoch(s) (training: "
            f"{train_setup(train)}, {train.dataset})"
        ),
        cols,
        rows,
    )


def bench_tables(result: BenchResult, training: TrainResult | None) -> None:
    """bench-infer's tables: every configuration (and why any is unstable), the CUDA split, the cost."""
    console.print(bench_table(result))
    verdict_lines(result)
    for x in result.runs:
        if x.stable is False:
            note(f"[yellow]unstable[/] {esc(f'{x.label}: {x.unstable_cause}')}")
    for t in (outputs_table(result), split_table(result), cost_table(result, training) if training else None):
        if t is not None:
            console.print(t)


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
    cells = [
        [
            esc(r["what"]),
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
        Col("A img/s"),
        Col("B img/s"),
        Col("B / A"),
        Col("95% CI", drop=1),
        Col("verdict", left=True),
    ]
    return fitted(esc(f"B against A, matching rows (A: {a}; B: {b}; noise band ±{100 * noise:.0f}%)"), cols, cells)
