"""Console output: the only module that imports rich.

Tables and progress bars go to stdout; errors and warnings go to stderr through the CLI.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table

from .results import BenchResult, EpochResult, InferRun, SuiteResult, TrainResult, cost_rows, machine_of

GEMM_NOTE = "measured fp32 GEMM"
# Piped output (CI logs, README tables) gets a width that fits the wide bench table.
console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200)


def _s(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:,.2f} s"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def _num(x: float | None, digits: int = 0) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


class TrainProgress:
    """A bar per epoch (batches done, time left) and the reference's log line per epoch, readable."""

    def __init__(self, total_epochs: int):
        self.total = total_epochs
        # A low refresh rate: on a 2-core machine the redraw thread competes with training.
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("batches"), TimeElapsedColumn(), TimeRemainingColumn(),
                            console=console, refresh_per_second=4, transient=True)
        self.task = None

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def start_epoch(self, epoch: int, batches: int) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(f"epoch {epoch}/{self.total} train", total=batches)

    def advance(self) -> None:
        self.bar.advance(self.task)

    def validating(self) -> None:
        self.bar.update(self.task, description=self.bar.tasks[-1].description.replace("train", "valid"))

    def end_epoch(self, e: EpochResult) -> None:
        self.bar.console.print(
            f"epoch {e.epoch:>3}  train loss {e.train_loss:.4f}  [cyan]{e.train_s:6.2f} s[/]   "
            f"valid loss {e.valid_loss:.4f}  acc [bold]{100 * e.valid_accuracy:6.2f}%[/]  "
            f"[cyan]{e.valid_s:5.2f} s[/]", highlight=False)


def train_summary(r: TrainResult) -> Table:
    s = r.summary()
    n = len(r.epochs)
    t = Table(title=f"LeNet5 ({r.arch}) on {r.dataset}: {n} epoch(s), {r.device}, "
                    f"{r.threads} thread(s), {r.precision}", title_justify="left")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_column("note", style="dim")
    t.add_row("training time", _s(s["train_s"]), f"{_s(s['train_s'] / n if n else None)} per epoch")
    t.add_row("validation time", _s(s["valid_s"]), f"{_s(s['valid_s'] / n if n else None)} per pass "
              f"({r.valid_images:,} images, batch {r.valid_batch_size})")
    t.add_row("total", _s(s["total_s"]), "training + validation, as the reference adds them")
    t.add_row("first epoch", _s(s["first_epoch_s"]), "train + valid; includes warm-up cost")
    t.add_row("steady epoch (training)", _s(s["steady_epoch_train_s"]), "mean of epochs 2..N")
    t.add_row("training throughput", f"{_num(s['images_per_s'])} img/s",
              f"{_num(s['train_gflops'], 1)} GFLOP/s (3 x {r.flops_per_image / 1e6:.2f} MFLOP/img)")
    if s["percent_of_peak"] is not None:
        t.add_row("% of fp32 peak", f"{s['percent_of_peak']:.0f}%",
                  f"of {r.peak['peak']:,.0f} GFLOP/s, a {GEMM_NOTE} on the same {r.device} threads")
    if r.peak_rss_mb is not None:
        t.add_row("peak memory", f"{r.peak_rss_mb:,.0f} MiB", "resident set of the process")
    t.add_row("final accuracy", _pct(s["final_accuracy"]), f"epoch {n}")
    t.add_row("best accuracy", _pct(s["best_accuracy"]), f"epoch {s['best_epoch']}")
    if s["target_epoch"] is not None:
        t.add_row(f"reached {_pct(r.target_accuracy)}", f"epoch {s['target_epoch']}",
                  f"after {_s(s['target_s'])} (train + valid)")
    else:
        t.add_row(f"reached {_pct(r.target_accuracy)}", "not reached", f"in {n} epoch(s)")
    if r.onnx is not None:
        o = r.onnx
        ok = o.top1_agreement == 1.0 and o.max_abs_diff < 1e-3
        style = "green" if ok else "red"
        t.add_row("ONNX export", o.path, f"opset {o.opset}, {_s(o.export_s)}")
        t.add_row("ONNX Runtime parity", f"[{style}]{_pct(o.top1_agreement)} top-1[/]",
                  f"max |logit diff| {o.max_abs_diff:.2e} on {o.images:,} images")
    return t


def bench_table(r: BenchResult) -> Table:
    """One row per runtime x provider x threads x batch; the fastest in bold green."""
    t = Table(title=f"Validation of {r.model} on {r.dataset} ({r.runs[0].images:,} test images), "
                    f"{r.flops_per_image / 1e6:.2f} MFLOP/image" if r.runs else f"{r.model}: no runs",
              title_justify="left")
    for name in ("runtime", "provider", "threads", "batch", "images/s", "vs PyTorch", "GFLOP/s", "% peak",
                 "ms/batch mean±std", "p50 / p90 / p99 ms", "create", "1st run", "accuracy", "top-1 = PyTorch"):
        t.add_column(name, justify="left" if name in ("runtime", "provider") else "right", no_wrap=True)
    fastest = max(r.runs, key=lambda x: x.images_per_s, default=None)
    for x in r.runs:
        torch_row = next((y for y in r.runs if y.runtime == "pytorch" and x.same_config(y)), None)
        ratio = f"{x.images_per_s / torch_row.images_per_s:.2f}x" if torch_row else "—"
        lat = x.latency_ms
        parity = "—" if x.top1_agreement is None else _pct(x.top1_agreement)
        acc = _pct(x.accuracy)
        if x.parity_ok is False:
            acc, parity = f"[bold red]{acc}[/]", f"[bold red]{parity}[/]"
        t.add_row(x.runtime, x.where, str(x.threads or "default"), str(x.batch_size),
                  _num(x.images_per_s), ratio, _num(x.gflops, 1),
                  "—" if x.percent_of_peak is None else f"{x.percent_of_peak:.0f}%", f"{lat.mean:.3f} ± {lat.std:.3f}",
                  f"{lat.p50:.3f} / {lat.p90:.3f} / {lat.p99:.3f}", f"{x.session_create_s * 1e3:.0f} ms",
                  f"{x.first_run_s * 1e3:.1f} ms", acc, parity,
                  style="bold green" if x is fastest else None)
    return t


def split_table(r: BenchResult) -> Table | None:
    """CUDA rows: where a batch's time goes, the way trtexec reports H2D / GPU compute / D2H."""
    rows = [x for x in r.runs if x.split_ms]
    if not rows:
        return None
    t = Table(title="CUDA per-batch split (ms)", title_justify="left")
    for name in ("runtime", "batch", "host-to-device", "compute", "device-to-host", "end-to-end mean"):
        t.add_column(name, justify="left" if name == "runtime" else "right")
    for x in rows:
        sp = x.split_ms
        t.add_row(x.runtime, str(x.batch_size), f"{sp['h2d']:.3f}", f"{sp['compute']:.3f}",
                  f"{sp['d2h']:.3f}", f"{x.latency_ms.mean:.3f}")
    return t


def cost_table(r: BenchResult, train: TrainResult) -> Table:
    """The reference's split: training time, validation time, total, with validation priced per runtime."""
    t = Table(title=f"Training vs validation cost over {len(train.epochs)} epoch(s) (training: {train.device}, "
                    f"{train.threads} thread(s), {train.dataset})", title_justify="left")
    for name in ("validation by", "training", "validation", "total", "validation share"):
        t.add_column(name, justify="left" if name == "validation by" else "right")
    for label, train_s, valid_s in cost_rows(train, r.runs):
        total = train_s + valid_s
        t.add_row(label, _s(train_s), _s(valid_s), _s(total), _pct(valid_s / total))
    return t


class SuiteProgress:
    """One bar across the whole suite (with the time left) and a line per finished epoch.

    It takes train()'s progress calls (start_epoch, advance, validating, end_epoch) directly.
    """

    def __init__(self):
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                            TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                            console=console, refresh_per_second=4)
        self.task = self.bar.add_task("suite", total=1)

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def total(self, units: int) -> None:
        self.bar.update(self.task, total=units)

    def start(self, what: str) -> None:
        self.bar.update(self.task, description=what)
        self.bar.console.print(f"[bold]{what}[/]", highlight=False)

    def start_epoch(self, epoch: int, batches: int) -> None: ...
    def validating(self) -> None: ...

    def advance(self) -> None:
        self.bar.advance(self.task)

    def config(self) -> None:
        self.bar.advance(self.task, 50)

    def end_epoch(self, e: EpochResult) -> None:
        self.bar.console.print(f"  epoch {e.epoch:>3}  train {e.train_s:6.2f} s  valid {e.valid_s:5.2f} s  "
                               f"acc {100 * e.valid_accuracy:6.2f}%", highlight=False)


RUNTIME_NAMES = {"onnxruntime": "ONNX Runtime", "pytorch": "PyTorch eager"}


def suite_table(result: SuiteResult, ref: dict) -> Table:
    """The reference's table for this machine, with the reference's published rows beside it.

    With fewer than the reference's 100 epochs, every row shows per-epoch times, so that this
    machine's figures and the reference's are compared like for like.
    """
    epochs = result.config["epochs"]
    per_epoch = epochs != ref["epochs"]
    unit = " / epoch" if per_epoch else ""
    t = Table(title=f"LeNet5 on {result.dataset}: {epochs} epoch(s) per mode on this machine"
                    + (" (times per epoch)" if per_epoch else ""), title_justify="left")
    for name in ("machine", "mode", "runtime", f"training{unit}", f"validation{unit}", f"total{unit}",
                 "final accuracy", "images/s"):
        t.add_column(name, justify="left" if name in ("machine", "mode", "runtime") else "right")
    div = epochs if per_epoch else 1
    for m in result.modes:
        tr = m.train
        s = tr.summary()
        machine = machine_of(tr.environment, tr.device).split(" @ ")[0]
        t.add_row(machine, m.mode, "PyTorch (crossrt train)", _s(s["train_s"] / div), _s(s["valid_s"] / div),
                  _s(s["total_s"] / div), _pct(s["final_accuracy"]), f"{_num(s['images_per_s'])} train")
        runs = m.bench.runs if m.bench else []
        for run, (_, train_s, valid_s) in zip(runs, cost_rows(tr, runs)[1:]):
            io = "" if run.io == "host" else f" ({run.io})"
            t.add_row("", "", f"validation: {RUNTIME_NAMES[run.runtime]}{io}", _s(train_s / div), _s(valid_s / div),
                      _s((train_s + valid_s) / div), _pct(run.accuracy), f"{_num(run.images_per_s)} valid")
        t.rows[-1].end_section = True
    for r in ref["rows"]:
        machine = ref["machine"]["gpu" if r["mode"].startswith("gpu") else "cpu"] + " (reference, MNIST)"
        train_s, valid_s = r["train_s"], r["valid_s"]
        t.add_row(f"[dim]{machine}[/]", f"[dim]{r['mode']}[/]", f"[dim]{r['runtime']}[/]",
                  _s(train_s / ref["epochs"] if per_epoch and train_s else train_s),
                  _s(valid_s / ref["epochs"] if per_epoch and valid_s else valid_s),
                  _s(r["total_s"] / ref["epochs"] if per_epoch else r["total_s"]), _pct(r["final_accuracy"]),
                  f"{_num(60000 * ref['epochs'] / train_s)} train" if train_s else "—")
    return t


def scaling_table(rows: list[dict]) -> Table:
    t = Table(title="Scaling against 1 thread (sweep)", title_justify="left")
    for name in ("phase", "batch", "threads", "images/s", "speed-up", "parallel efficiency"):
        t.add_column(name, justify="left" if name == "phase" else "right")
    for r in rows:
        t.add_row(r["phase"], str(r["batch_size"]), str(r["threads"]), _num(r["images_per_s"]),
                  "—" if r["speedup"] is None else f"{r['speedup']:.2f}x",
                  "—" if r["efficiency"] is None else f"{100 * r['efficiency']:.0f}%")
    return t


def report_table(rows: list[dict]) -> Table:
    """Merged results, grouped by machine (a section per machine)."""
    t = Table(title="crossrt results, grouped by machine", title_justify="left")
    for name in ("machine", "kind", "device", "runtime", "threads", "batch", "epochs", "training", "validation",
                 "total", "images/s", "accuracy"):
        t.add_column(name, justify="left" if name in ("machine", "kind", "device", "runtime") else "right")
    for i, r in enumerate(rows):
        last = i + 1 == len(rows) or rows[i + 1]["machine"] != r["machine"]
        first = i == 0 or rows[i - 1]["machine"] != r["machine"]
        t.add_row(r["machine"] if first else "", r["kind"], r["device"], r["runtime"], str(r["threads"]),
                  str(r["batch_size"]), "" if r["epochs"] is None else str(r["epochs"]), _s(r["train_s"]),
                  _s(r["valid_s"]), _s(r["total_s"]), _num(r["images_per_s"]), _pct(r["accuracy"]),
                  end_section=last)
    return t


def bench_line(run: InferRun) -> None:
    """One line as each configuration finishes, so a long bench shows progress."""
    console.print(f"  {run.runtime:<11} {run.where:<20} threads={run.threads:<3} batch={run.batch_size:<5} "
                  f"{run.images_per_s:>10,.0f} img/s  acc {100 * run.accuracy:.2f}%", highlight=False)


def note(text: str) -> None:
    """A line of plain output (rich markup allowed), never re-highlighted."""
    console.print(text, highlight=False)


def dataset_line(ds) -> None:
    note(f"dataset: [bold]{ds.name}[/] ({len(ds.train_labels):,} train / {len(ds.test_labels):,} test images): "
         f"{ds.reason}")


def export_line(path, parity, dataset: str) -> None:
    ok = parity.top1_agreement == 1.0
    note(f"exported {path} (opset {parity.opset}, {parity.export_s:.2f} s); ONNX Runtime vs PyTorch on "
         f"{parity.images:,} {dataset} test images: max |logit diff| {parity.max_abs_diff:.2e}, "
         f"top-1 agreement [{'green' if ok else 'red'}]{100 * parity.top1_agreement:.2f}%[/]")


def bench_tables(result: BenchResult, training: TrainResult | None) -> None:
    """bench-infer's tables: every configuration, the CUDA split, the training-vs-validation cost."""
    console.print(bench_table(result))
    split = split_table(result)
    if split is not None:
        console.print(split)
    if training is not None:
        console.print(cost_table(result, training))
