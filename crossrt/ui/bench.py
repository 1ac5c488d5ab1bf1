"""bench-infer's tables: a row per configuration (the columns of crossrt.columns), the verdicts
under it, every output of a model with several, the CUDA split, the reference's cost split.
Measurement never imports this module.
"""

from __future__ import annotations

import math

from rich.table import Table

from .. import columns
from ..columns import BENCH, Column, pct, secs
from ..compare import cost_rows, train_setup
from ..results import BenchResult, CudaSplit, InferRun, TrainResult
from ..verdicts import computes, verdicts
from .console import console, esc, note
from .layout import Col, as_col, fitted
from .training import peak_note


def verdict_lines(r: BenchResult, where: str = "") -> None:
    """The answer under the table, in words: per setting, the runtime to pick and how sure."""
    for v in r.verdicts or verdicts(r.runs):  # a file from before schema 11 has none saved
        sure = "green" if v.sure and not v.unstable else "yellow"
        note(f"[bold {sure}]verdict[/]{esc(where)}: {esc(v.text)}", wrap=True)


def flop_text(flops: int) -> str:
    """A FLOP count in the unit that keeps its digits: 2,048 FLOP, 731.1 kFLOP, 3.90 MFLOP, 4.10 GFLOP."""
    for unit, size in (("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if flops >= size:
            return f"{flops / size:,.{1 if unit == 'kFLOP' else 2}f} {unit}"
    return f"{flops:,} FLOP"


def model_title(r: BenchResult) -> str:
    """What ran: the model (its size and parameters for any model), what fed it, its FLOPs per sample."""
    info, flops = r.model_info, r.flops_per_sample
    per = "image" if r.dataset else "sample"
    cost = "FLOPs not counted" if flops is None else f"{flop_text(flops)}/{per}"
    if r.dataset:
        return f"Validation of {r.model} on {r.dataset} ({r.runs[0].samples:,} test images), {cost}"
    params, size = info.get("parameters", 0), info.get("bytes", 0)
    size = (f"{params / 1e6:,.2f}M parameters" if params >= 1e6 else f"{params:,} parameters") + (
        f", {size / 2**20:,.1f} MiB" if size >= 2**20 else f", {size:,} bytes"
    )
    title = f"{info.get('name', r.model)} ({size}): {'; '.join(info.get('inputs', [])) or 'no inputs'}; {cost}"
    if torch := info.get("torch_model"):  # whose network the PyTorch rows ran, and in what form
        how = {
            "export": "a torch.export program, run eagerly through its module(), which checks its guards "
            "and flattens its inputs on every call",
            "torchscript": "TorchScript",
        }.get(torch["format"], torch["format"])
        title += f"; PyTorch rows: {torch['name']} ({how})"
    return title


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
            + ([f"% peak: {peak_note(p)}" for p in r.peaks] if columns.flops_matter(r) else [])
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
        [as_col(c, "img" if labelled else "samples", r) for c in cols],
        rows,
        styles=["bold green" if x is fastest else None for x in r.runs],
        caption=caption,
    )


def bench_cell(c: Column, run: InferRun, r: BenchResult) -> str:
    text = c.shown(c.bench(run, r))
    return f"[bold red]{text}[/]" if c.red and run.parity_ok is False else text


def rounded_up(x: float) -> str:
    """x to two significant digits, rounded up: a tolerance given as printed passes what it was printed for."""
    if x <= 0:
        return "0"
    step = 10 ** (math.floor(math.log10(x)) - 1)
    return f"{math.ceil(x / step - 1e-9) * step:.1e}"


def outputs_table(r: BenchResult) -> Table | None:
    """A model with several outputs, or an output that disagrees: each output of each row against
    ONNX Runtime CPU fp32, with its cosine similarity, its tolerance and, where it failed, the
    smallest tolerance that would have passed (Polygraphy's and OpenVINO's checks show as much)."""
    if not any(len(x.outputs or []) > 1 or any(not o.ok for o in x.outputs or []) for x in r.runs):
        return None
    rows = [
        [
            x.label,
            o.name,
            "—" if o.max_abs is None else f"{o.max_abs:.2e}",
            o.note or ("—" if o.max_rel is None else f"{o.max_rel:.2e}"),
            "—" if o.cosine is None else f"{o.cosine:.6f}",
            "—" if o.top1 is None else pct(o.top1),
            "—" if o.tolerance is None else f"{o.tolerance:g}",
            ("not compared" if (o.note or "").startswith("not compared") else "yes")
            if o.ok
            else "[bold red]no[/]" + (f" (passes at {rounded_up(o.max_rel)})" if o.max_rel is not None else ""),
        ]
        for x in r.runs
        for o in x.outputs or []
    ]
    cols = [
        Col("configuration", left=True, wrap=True, key=True),
        Col("output", left=True, key=True),
        Col("max |diff|"),
        Col("max |diff| /\nmax |ref|"),
        Col("cosine", drop=1),
        Col("top-1\nagrees", drop=1),
        Col("toler-\nance", drop=1),
        Col("within\ntolerance", left=True),
    ]
    return fitted(
        "Every output against ONNX Runtime CPU fp32 on the same inputs (--tolerance [OUTPUT=]R sets the tolerance)",
        cols,
        rows,
    )


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
            note(f"[yellow]unstable[/] {esc(f'{x.label}: {x.unstable_cause}')}", wrap=True)
        if x.placement and (elsewhere := {ep: n for ep, n in x.placement.items() if ep != x.providers[0]}):
            where = ", ".join(f"{n} on {ep.removesuffix('ExecutionProvider')}" for ep, n in elsewhere.items())
            note(esc(f"{x.label}: {where} of its {sum(x.placement.values())} nodes (no kernel on "
                     f"{x.providers[0].removesuffix('ExecutionProvider')}, or shapes ONNX Runtime computes there)"),
                 wrap=True)  # fmt: skip
    for t in (outputs_table(result), split_table(result), cost_table(result, training) if training else None):
        if t is not None:
            console.print(t)
